package main

import "syscall"

// childAttr puts a child in its own process group, so that Ctrl-C reaches
// only the demo, which then stops Legate before its upstreams; and asks the
// kernel to signal the child if the demo dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

package main

import "syscall"

// childAttr puts a child in its own process group, so that Ctrl-C reaches
// only the demo, which then stops Legate before its upstreams; and asks the
// kernel to signal the child if the demo dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// crash kills a child the way a crash would: no SIGTERM, so it cannot
// deregister (the --xds check uses it to show lease expiry).
func crash(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

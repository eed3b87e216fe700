package legatetest

import (
	"os/exec"
	"syscall"
)

// orphanKill makes the kernel kill legate if the test binary dies first
// (a panic or -timeout), so no proxy outlives its test.
func orphanKill(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

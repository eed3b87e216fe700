package dashboard

import (
	"os/exec"
	"syscall"
)

// orphanKill makes the kernel kill legate if the test binary dies first.
func orphanKill(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

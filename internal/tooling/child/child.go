// Package child starts helper processes for Legate's tools and waits on them.
//
// The benchmark harness (bench/run) and the demo (cmd/legate-demo) both run
// other programs as children: they start one, need to know when it has
// exited, stop it politely and then firmly, and wait until it serves (a URL
// answers 200, an address accepts connections) while giving up early when it
// exits, when a timeout passes or when the user interrupts. This package is
// that one implementation, so the two tools cannot drift apart.
package child

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// Options are how Start runs a process.
type Options struct {
	// Stdout and Stderr receive the process's output, as in exec.Cmd: nil
	// discards it, and one that is not an *os.File has been written to in
	// full by the time the process counts as exited.
	Stdout, Stderr io.Writer
	// SysProcAttr is passed to exec.Cmd unchanged (process group, parent
	// death signal and so on); nil means none.
	SysProcAttr *syscall.SysProcAttr
	// OnExit, when set, runs once the process has exited and its output has
	// been written, before Done is closed: what it flushes or reports comes
	// before anything that waits on Done goes on.
	OnExit func(*Process)
}

// Process is a started child. Its methods may be called from any goroutine.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // what exec.Cmd.Wait returned; written before done is closed
}

// Start runs argv[0] with the arguments argv[1:]. name labels the process in
// errors. The process is reaped in the background; see Done.
func Start(name string, argv []string, o Options) (*Process, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("start %s: empty command", name)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	cmd.SysProcAttr = o.SysProcAttr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if o.OnExit != nil {
			o.OnExit(p)
		}
		close(p.done)
	}()
	return p, nil
}

// Name is the label given to Start.
func (p *Process) Name() string { return p.name }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited (and OnExit has returned).
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is how the process ended, as exec.Cmd.Wait reports it (nil for exit
// status 0). Call it only once Done is closed, or from OnExit, or after
// learning of the exit from OnExit (through a channel, say): before that it
// is still being written.
func (p *Process) Err() error { return p.err }

// Stop sends SIGTERM, waits up to grace for the process to exit, and kills
// it if it has not; it returns once the process has exited. killed reports
// whether it had to kill. Stopping a process that has exited does nothing.
func (p *Process) Stop(grace time.Duration) (killed bool) {
	if !p.Running() {
		return false
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return false
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return true
	}
}

// errInterrupted is Poll's error when its context ends.
var errInterrupted = errors.New("interrupted")

// TimeoutError is Poll's error when the timeout passed without try
// succeeding.
type TimeoutError struct {
	Timeout time.Duration
	Err     error // try's last error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("not ready after %v: %v", e.Timeout, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

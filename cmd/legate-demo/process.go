package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var execLookPath = exec.LookPath

// child is a process the demo started and must stop.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

// startChild runs bin with args, its output prefixed with [name] on out.
// When it exits, it is sent on exited (which must have room).
func startChild(name, bin string, args []string, out io.Writer, exited chan<- *child) (*child, error) {
	w := &prefixWriter{prefix: []byte("[" + name + "] "), w: out}
	return startChildSplit(name, bin, args, w, w, exited)
}

// startChildSplit is startChild with the child's stdout and stderr going
// to writers of their own (Legate's stdout carries its access log).
func startChildSplit(name, bin string, args []string, stdout, stderr *prefixWriter, exited chan<- *child) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		stdout.flush()
		if stderr != stdout {
			stderr.flush()
		}
		close(c.done)
		exited <- c
	}()
	return c, nil
}

func (c *child) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to grace before killing.
func (c *child) stop(grace time.Duration) {
	if !c.running() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		fmt.Fprintf(os.Stderr, "legate-demo: %s did not stop within %v; killing it\n", c.name, grace)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// waitTCP waits until addr accepts connections, c exits, or timeout passes.
func waitTCP(ctx context.Context, addr string, c *child, timeout time.Duration) error {
	return poll(ctx, c, timeout, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// waitHTTP waits until url answers 200, c exits, or timeout passes.
func waitHTTP(ctx context.Context, url string, c *child, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, c, timeout, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
}

func poll(ctx context.Context, c *child, timeout time.Duration, try func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := try()
		if err == nil {
			return nil
		}
		if !c.running() {
			return fmt.Errorf("exited before it was ready: %v", c.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-c.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// prefixWriter writes whole lines, each prefixed, so that the output of
// several children interleaves line by line.
type prefixWriter struct {
	prefix []byte
	w      io.Writer
	// onLine, when set, sees every line (without its newline) before it is
	// written.
	onLine func(line []byte)
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if p.onLine != nil {
			p.onLine(p.buf[:i])
		}
		line := append(append([]byte(nil), p.prefix...), p.buf[:i+1]...)
		p.buf = p.buf[i+1:]
		if _, err := p.w.Write(line); err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		if p.onLine != nil {
			p.onLine(p.buf)
		}
		_, _ = p.w.Write(append(append(append([]byte(nil), p.prefix...), p.buf...), '\n'))
		p.buf = nil
	}
}

// lineCounter counts lines containing each of its patterns; it is a
// prefixWriter's onLine.
type lineCounter struct {
	patterns [][]byte
	counts   []atomic.Int64
}

func newLineCounter(patterns ...string) *lineCounter {
	lc := &lineCounter{counts: make([]atomic.Int64, len(patterns))}
	for _, p := range patterns {
		lc.patterns = append(lc.patterns, []byte(p))
	}
	return lc
}

func (lc *lineCounter) observe(line []byte) {
	for i, p := range lc.patterns {
		if bytes.Contains(line, p) {
			lc.counts[i].Add(1)
		}
	}
}

// count is how many lines contained patterns[i].
func (lc *lineCounter) count(i int) int64 { return lc.counts[i].Load() }

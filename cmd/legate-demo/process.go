package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/tooling/child"
)

var execLookPath = exec.LookPath

// startChild runs bin with args, its output prefixed with [name] on out.
// When it exits, it is sent on exited (which must have room).
func startChild(name, bin string, args []string, out io.Writer, exited chan<- *child.Process) (*child.Process, error) {
	w := &prefixWriter{prefix: []byte("[" + name + "] "), w: out}
	return startChildSplit(name, bin, args, w, w, exited)
}

// startChildSplit is startChild with the child's stdout and stderr going
// to writers of their own (Legate's stdout carries its access log).
func startChildSplit(name, bin string, args []string, stdout, stderr *prefixWriter, exited chan<- *child.Process) (*child.Process, error) {
	return child.Start(name, append([]string{bin}, args...), child.Options{
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: childAttr(),
		OnExit: func(c *child.Process) {
			// A last line without a newline is still printed, before
			// anyone reports the exit.
			stdout.flush()
			if stderr != stdout {
				stderr.flush()
			}
			exited <- c
		},
	})
}

// stopChild stops c (SIGTERM, then a kill after grace) and says when it had
// to kill.
func stopChild(c *child.Process, grace time.Duration) {
	if c.Stop(grace) {
		fmt.Fprintf(os.Stderr, "legate-demo: %s did not stop within %v; killing it\n", c.Name(), grace)
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

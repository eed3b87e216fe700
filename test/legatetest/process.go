package legatetest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// readyTimeout bounds the wait for /ready: generous, for a loaded machine.
const readyTimeout = 30 * time.Second

// Options say how to start legate.
type Options struct {
	// AdminPort is the admin listener's port; 0 takes it from the config's
	// admin.address.socket_address.port_value.
	AdminPort int
	// Args follow "-c <config file>" on legate's command line.
	Args []string
}

// Process is one running legate.
type Process struct {
	t          testing.TB
	cmd        *exec.Cmd
	stderr     SyncBuffer
	stdout     SyncBuffer
	done       chan struct{}
	waitErr    error
	stopped    atomic.Bool
	AdminPort  int
	Config     string // the config text
	ConfigPath string // the file legate was given with -c
}

// Start writes config to a file, starts legate on it with opts.Args and
// waits until admin /ready answers 200 LIVE; it fails the test if legate
// does not get there. When the test ends legate gets SIGTERM and must exit
// with status 0; if the test failed, legate's output is logged.
func Start(t testing.TB, config string, opts Options) *Process {
	t.Helper()
	p, err := TryStart(t, config, opts)
	if err != nil {
		t.Fatalf("starting legate: %v", err)
	}
	return p
}

// StartRetry is Start on the config and options next returns, calling next
// again (up to three tries in all) when legate could not bind a port:
// between FreePort and legate's bind another process may take the port, so
// next should choose fresh ones.
func StartRetry(t testing.TB, next func() (config string, opts Options)) *Process {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		config, opts := next()
		p, err := TryStart(t, config, opts)
		if err == nil {
			return p
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting legate: %v", lastErr)
	return nil
}

// TryStart is Start returning an error, which includes the config and
// legate's stderr, instead of failing the test.
func TryStart(t testing.TB, config string, opts Options) (*Process, error) {
	t.Helper()
	admin := opts.AdminPort
	if admin == 0 {
		var err error
		if admin, err = adminPort(config); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(t.TempDir(), "legate.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	p := &Process{t: t, done: make(chan struct{}), AdminPort: admin, Config: config, ConfigPath: path}
	p.cmd = exec.Command(Bin(), append([]string{"-c", path}, opts.Args...)...)
	p.cmd.Stderr = &p.stderr
	p.cmd.Stdout = &p.stdout
	orphanKill(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(readyTimeout); err != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("%w\nconfig:\n%s\nstderr:\n%s", err, config, p.stderr.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("legate stderr:\n%s", p.stderr.String())
			if out := p.stdout.String(); out != "" {
				t.Logf("legate stdout:\n%s", out)
			}
		}
		if p.stopped.Load() {
			return
		}
		if code := p.Stop(); code != 0 {
			t.Errorf("legate exited with status %d after SIGTERM\nstderr:\n%s", code, p.stderr.String())
		}
	})
	return p, nil
}

// adminPort reads admin.address.socket_address.port_value from a config.
func adminPort(config string) (int, error) {
	var c struct {
		Admin struct {
			Address struct {
				SocketAddress struct {
					PortValue int `json:"port_value"`
				} `json:"socket_address"`
			} `json:"address"`
		} `json:"admin"`
	}
	if err := yaml.Unmarshal([]byte(config), &c); err != nil {
		return 0, fmt.Errorf("finding the admin port: %w", err)
	}
	if p := c.Admin.Address.SocketAddress.PortValue; p != 0 {
		return p, nil
	}
	return 0, errors.New("the config has no admin port_value; set Options.AdminPort")
}

func (p *Process) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("legate exited early: %v", p.waitErr)
		default:
		}
		resp, err := c.Get(p.AdminURL("/ready"))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.TrimSpace(string(body)) == "LIVE" {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("admin /ready did not answer 200 LIVE in time")
}

// AdminURL is the admin listener's URL for path.
func (p *Process) AdminURL(path string) string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p.AdminPort)) + path
}

// Stderr is everything legate wrote to stderr so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Stdout is everything legate wrote to stdout so far.
func (p *Process) Stdout() string { return p.stdout.String() }

// Signal sends sig to legate.
func (p *Process) Signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Errorf("signal: %v", err)
	}
}

// Wait waits for legate to exit and returns its exit status (-1 on timeout,
// after killing it).
func (p *Process) Wait(timeout time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Errorf("legate did not exit within %v", timeout)
		_ = p.cmd.Process.Kill()
		<-p.done
		return -1
	}
	p.stopped.Store(true)
	return p.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM and returns the exit status.
func (p *Process) Stop() int {
	p.stopped.Store(true)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(15 * time.Second)
}

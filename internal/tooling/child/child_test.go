package child

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitLong bounds waits that end promptly unless something is broken.
const waitLong = 30 * time.Second

func needTools(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"sh", "sleep"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not available: %v", bin, err)
		}
	}
}

func waitDone(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(waitLong):
		t.Fatalf("%s did not exit within %v", p.Name(), waitLong)
	}
}

func TestStartExitStatus(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		script string
		code   int // -1: no error
	}{
		{"exit 0", -1},
		{"exit 3", 3},
	} {
		t.Run(tc.script, func(t *testing.T) {
			p, err := Start("sh", []string{"sh", "-c", tc.script}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			waitDone(t, p)
			if p.Running() {
				t.Error("Running after Done")
			}
			if p.Pid() <= 0 {
				t.Errorf("Pid = %d", p.Pid())
			}
			var ee *exec.ExitError
			switch {
			case tc.code < 0 && p.Err() != nil:
				t.Errorf("Err = %v, want nil", p.Err())
			case tc.code >= 0 && (!errors.As(p.Err(), &ee) || ee.ExitCode() != tc.code):
				t.Errorf("Err = %v, want exit status %d", p.Err(), tc.code)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{nil, "start thing: empty command"},
		{[]string{filepath.Join(t.TempDir(), "missing")}, "start thing: "},
	} {
		p, err := Start("thing", tc.argv, Options{})
		if err == nil {
			p.Stop(time.Second)
			t.Fatalf("Start(%q) succeeded", tc.argv)
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Start(%q) = %v, want prefix %q", tc.argv, err, tc.want)
		}
	}
}

// Output written through pipes is complete when OnExit runs, and OnExit
// runs (and may report the exit) before Done is closed.
func TestOutputAndOnExit(t *testing.T) {
	needTools(t)
	var stdout, stderr bytes.Buffer
	var sawOut atomic.Value
	exited := make(chan *Process, 1)
	p, err := Start("sh", []string{"sh", "-c", "echo out; echo err >&2; exit 4"}, Options{
		Stdout: &stdout,
		Stderr: &stderr,
		OnExit: func(p *Process) {
			sawOut.Store(stdout.String())
			exited <- p
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got *Process
	select {
	case got = <-exited:
	case <-time.After(waitLong):
		t.Fatal("OnExit did not run")
	}
	// Learned of the exit from OnExit: Err is readable already.
	if got != p || got.Err() == nil || !strings.Contains(got.Err().Error(), "exit status 4") {
		t.Errorf("OnExit got %p with Err %v, want %p with exit status 4", got, got.Err(), p)
	}
	waitDone(t, p)
	if s, _ := sawOut.Load().(string); s != "out\n" {
		t.Errorf("stdout seen by OnExit = %q, want %q", s, "out\n")
	}
	if stderr.String() != "err\n" {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestStop(t *testing.T) {
	needTools(t)
	t.Run("SIGTERM", func(t *testing.T) {
		p, err := Start("sleep", []string{"sleep", "600"}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Running() {
			t.Fatal("not running")
		}
		if p.Stop(waitLong) {
			t.Error("killed sleep, which SIGTERM ends")
		}
		if p.Running() {
			t.Error("Running after Stop")
		}
		if p.Stop(waitLong) {
			t.Error("second Stop killed")
		}
	})
	t.Run("kill", func(t *testing.T) {
		// The shell ignores SIGTERM (and so does the sleep it becomes), and
		// says so by creating a file.
		ready := filepath.Join(t.TempDir(), "ready")
		p, err := Start("stubborn", []string{"sh", "-c", `trap "" TERM; : > "$1"; exec sleep 600`, "sh", ready}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = Poll(context.Background(), p, waitLong, 10*time.Millisecond, func() error {
			_, err := os.Stat(ready)
			return err
		})
		if err != nil {
			p.Stop(0)
			t.Fatal(err)
		}
		if !p.Stop(100 * time.Millisecond) {
			t.Error("Stop did not kill a process that ignores SIGTERM")
		}
		if p.Running() {
			t.Error("Running after Stop")
		}
	})
}

func TestPoll(t *testing.T) {
	needTools(t)
	errNotYet := errors.New("not yet")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	t.Run("succeeds", func(t *testing.T) {
		n := 0
		err := Poll(context.Background(), nil, waitLong, time.Millisecond, func() error {
			if n++; n < 3 {
				return errNotYet
			}
			return nil
		})
		if err != nil || n != 3 {
			t.Errorf("Poll = %v after %d tries, want nil after 3", err, n)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		n := 0
		err := Poll(context.Background(), nil, 0, time.Millisecond, func() error { n++; return errNotYet })
		var te *TimeoutError
		if !errors.As(err, &te) || te.Err != errNotYet || !errors.Is(err, errNotYet) {
			t.Fatalf("Poll = %#v, want a *TimeoutError wrapping errNotYet", err)
		}
		if want := "not ready after 0s: not yet"; err.Error() != want || n != 1 {
			t.Errorf("Poll = %q after %d tries, want %q after 1", err, n, want)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		err := Poll(cancelled, nil, waitLong, time.Hour, func() error { return errNotYet })
		if err != errInterrupted || err.Error() != "interrupted" {
			t.Errorf("Poll = %v, want interrupted", err)
		}
	})
	t.Run("exited", func(t *testing.T) {
		p, err := Start("sh", []string{"sh", "-c", "exit 2"}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		// The exit ends the hour-long wait between tries.
		err = Poll(context.Background(), p, time.Hour, time.Hour, func() error { return errNotYet })
		if want := "exited before it was ready: exit status 2"; err == nil || err.Error() != want {
			t.Errorf("Poll = %v, want %q", err, want)
		}
	})
	t.Run("ready before exit counts", func(t *testing.T) {
		p, err := Start("sh", []string{"sh", "-c", "exit 0"}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		waitDone(t, p)
		if err := Poll(context.Background(), p, waitLong, time.Hour, func() error { return nil }); err != nil {
			t.Errorf("Poll = %v, want nil", err)
		}
	})
}

func TestWaitHTTP(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
		case hits.Add(1) < 3:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()

	if err := WaitHTTP(context.Background(), srv.URL+"/", nil, waitLong); err != nil {
		t.Errorf("WaitHTTP = %v", err)
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("%d requests, want 3 (two 503s, then 200)", n)
	}

	err := WaitHTTP(context.Background(), srv.URL+"/missing", nil, 0)
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.HasSuffix(err.Error(), "/missing: 404 Not Found") {
		t.Errorf("WaitHTTP(/missing) = %v, want a timeout after 404 Not Found", err)
	}
}

func TestWaitTCP(t *testing.T) {
	needTools(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := WaitTCP(context.Background(), ln.Addr().String(), nil, waitLong); err != nil {
		t.Errorf("WaitTCP(listening) = %v", err)
	}

	// A port nothing listens on, with a process that exits.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	p, err := Start("sh", []string{"sh", "-c", "exit 1"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = WaitTCP(context.Background(), addr, p, waitLong)
	if want := "exited before it was ready: exit status 1"; err == nil || err.Error() != want {
		t.Errorf("WaitTCP(closed) = %v, want %q", err, want)
	}
}

func TestGetOK(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want string // "" for success
	}{
		{"/", ""},
		{"/fail", "GET " + srv.URL + "/fail: 500 Internal Server Error"},
	} {
		err := GetOK(srv.Client(), srv.URL+tc.path)
		if got := errString(err); got != tc.want {
			t.Errorf("GetOK(%s) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

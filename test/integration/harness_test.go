// Package integration runs the real legate binary against real peers on
// loopback: Go upstreams (HTTP/1.1, h2c, TLS, raw TCP), a DNS server, and
// real clients (net/http, curl, nghttp/h2load, raw sockets).
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// legateBin is the binary under test: $LEGATE_BIN, or one built by TestMain.
var legateBin string

func TestMain(m *testing.M) {
	os.Exit(mainWithBinary(m))
}

func mainWithBinary(m *testing.M) int {
	if p := os.Getenv("LEGATE_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "LEGATE_BIN:", err)
			return 1
		}
		legateBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "legate-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	legateBin = filepath.Join(dir, "legate")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", legateBin, "./cmd/legate")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building legate: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// thisDir is the directory holding this package's sources.
func thisDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// freePort returns a loopback port that was free a moment ago. Legate binds
// exactly the configured port, so the port is chosen here; startLegate
// retries with fresh ports if another process grabbed one in between.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects the subprocess's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Legate is one running legate process.
type Legate struct {
	t       testing.TB
	cmd     *exec.Cmd
	stderr  *syncBuffer
	stdout  *syncBuffer
	ports   map[string]int
	Config  string // rendered config text
	CfgPath string
	done    chan struct{}
	waitErr error
	stopped atomic.Bool
}

// Port returns the port the template asked for with {{port "name"}}.
func (l *Legate) Port(name string) int {
	p, ok := l.ports[name]
	if !ok {
		l.t.Fatalf("config has no port %q", name)
	}
	return p
}

// Addr is "127.0.0.1:<port name>".
func (l *Legate) Addr(name string) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port(name)))
}

// URL is "http://127.0.0.1:<port name>" + path.
func (l *Legate) URL(name, path string) string { return "http://" + l.Addr(name) + path }

// AdminURL is the admin endpoint's URL for path.
func (l *Legate) AdminURL(path string) string { return l.URL("admin", path) }

// Stderr is everything legate logged so far.
func (l *Legate) Stderr() string { return l.stderr.String() }

// renderConfig executes tmpl with data; {{port "name"}} allocates (once per
// name) a free loopback port. Without an admin block one is appended.
func renderConfig(t testing.TB, tmpl string, data any) (string, map[string]int) {
	t.Helper()
	ports := map[string]int{}
	funcs := template.FuncMap{
		"port": func(name string) int {
			if p, ok := ports[name]; ok {
				return p
			}
			p := freePort(t)
			ports[name] = p
			return p
		},
	}
	if !strings.Contains(tmpl, "\nadmin:") && !strings.HasPrefix(tmpl, "admin:") {
		tmpl += "\nadmin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: {{port \"admin\"}}}\n"
	}
	tp, err := template.New("cfg").Funcs(funcs).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		t.Fatalf("config template: %v", err)
	}
	var b bytes.Buffer
	if err := tp.Execute(&b, data); err != nil {
		t.Fatalf("config template: %v", err)
	}
	return b.String(), ports
}

// startLegate renders the config, starts legate with -c and extra args and
// waits until admin /ready answers 200 LIVE. At cleanup it stops legate
// with SIGTERM and requires exit status 0; on failure its stderr is logged.
func startLegate(t testing.TB, tmpl string, data any, args ...string) *Legate {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		l, err := tryStartLegate(t, tmpl, data, args...)
		if err == nil {
			return l
		}
		lastErr = err
		// Another process may have taken a port between freePort and bind.
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting legate: %v", lastErr)
	return nil
}

func tryStartLegate(t testing.TB, tmpl string, data any, args ...string) (*Legate, error) {
	cfg, ports := renderConfig(t, tmpl, data)
	if _, ok := ports["admin"]; !ok {
		return nil, errors.New("config has no {{port \"admin\"}}")
	}
	path := filepath.Join(t.TempDir(), "legate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	l := &Legate{t: t, stderr: &syncBuffer{}, stdout: &syncBuffer{}, ports: ports, Config: cfg, CfgPath: path, done: make(chan struct{})}
	l.cmd = exec.Command(legateBin, append([]string{"-c", path, "--drain-time-s", "5"}, args...)...)
	l.cmd.Stderr = l.stderr
	l.cmd.Stdout = l.stdout
	orphanKill(l.cmd)
	if err := l.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		l.waitErr = l.cmd.Wait()
		close(l.done)
	}()
	if err := l.waitReady(20 * time.Second); err != nil {
		_ = l.cmd.Process.Kill()
		<-l.done
		return nil, fmt.Errorf("%w\nconfig:\n%s\nstderr:\n%s", err, cfg, l.stderr.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("legate stderr:\n%s", l.stderr.String())
		}
		if l.stopped.Load() {
			return
		}
		if code := l.Stop(); code != 0 {
			t.Errorf("legate exited with status %d after SIGTERM\nstderr:\n%s", code, l.stderr.String())
		}
	})
	return l, nil
}

func (l *Legate) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-l.done:
			return fmt.Errorf("legate exited early: %v", l.waitErr)
		default:
		}
		resp, err := c.Get(l.AdminURL("/ready"))
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

// Signal sends sig to legate.
func (l *Legate) Signal(sig os.Signal) {
	if err := l.cmd.Process.Signal(sig); err != nil {
		l.t.Errorf("signal: %v", err)
	}
}

// Wait waits for legate to exit and returns its exit status (-1 on timeout,
// after killing it).
func (l *Legate) Wait(timeout time.Duration) int {
	select {
	case <-l.done:
	case <-time.After(timeout):
		l.t.Errorf("legate did not exit within %v", timeout)
		_ = l.cmd.Process.Kill()
		<-l.done
		return -1
	}
	l.stopped.Store(true)
	return l.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM and returns the exit status.
func (l *Legate) Stop() int {
	l.stopped.Store(true)
	select {
	case <-l.done:
		return l.cmd.ProcessState.ExitCode()
	default:
	}
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	return l.Wait(15 * time.Second)
}

// Stats fetches /stats as a name → value map (counters and gauges).
func (l *Legate) Stats(t testing.TB) map[string]string {
	t.Helper()
	_, body := httpGet(t, l.AdminURL("/stats"))
	m := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok {
			m[k] = v
		}
	}
	return m
}

// Counter returns a stat's integer value, or -1 if absent.
func (l *Legate) Counter(t testing.TB, name string) int {
	v, ok := l.Stats(t)[name]
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// eventually polls cond until it is true or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is a plain HTTP/1.1 client with a per-test timeout and no proxy.
func newClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var defaultClient = newClient()

func httpGet(t testing.TB, url string) (*http.Response, string) {
	t.Helper()
	return do(t, defaultClient, mustReq(t, "GET", url, nil))
}

func mustReq(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

// Echo is what the echo upstream answers: who it is and what it saw.
type Echo struct {
	Upstream string              `json:"upstream"`
	Method   string              `json:"method"`
	Path     string              `json:"path"` // raw request URI
	Host     string              `json:"host"`
	Proto    string              `json:"proto"`
	Headers  map[string][]string `json:"headers"`
	Body     string              `json:"body"`
	Remote   string              `json:"remote"`
	SNI      string              `json:"sni,omitempty"`
}

func (e Echo) Header(name string) string {
	v := e.Headers[http.CanonicalHeaderKey(name)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (e Echo) Has(name string) bool {
	_, ok := e.Headers[http.CanonicalHeaderKey(name)]
	return ok
}

func decodeEcho(t testing.TB, body string) Echo {
	t.Helper()
	var e Echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("upstream answer is not echo JSON: %v\n%s", err, body)
	}
	return e
}

// Upstream is a test HTTP server with request and connection counters.
type Upstream struct {
	Name     string
	Addr     string // 127.0.0.1:port
	Host     string
	Port     int
	Requests atomic.Int64
	Conns    atomic.Int64
	srv      *http.Server
}

// echoHandler answers with the Echo JSON; x-echo-status sets the status,
// x-echo-sleep (a duration) delays the answer, x-echo-header: k=v adds a
// response header.
func echoHandler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if d, err := time.ParseDuration(r.Header.Get("x-echo-sleep")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		e := Echo{Upstream: name, Method: r.Method, Path: r.RequestURI, Host: r.Host, Proto: r.Proto,
			Headers: r.Header, Body: string(body), Remote: r.RemoteAddr}
		if r.TLS != nil {
			e.SNI = r.TLS.ServerName
		}
		for _, kv := range r.Header.Values("x-echo-header") {
			k, v, _ := strings.Cut(kv, "=")
			w.Header().Add(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", name)
		if s, err := strconv.Atoi(r.Header.Get("x-echo-status")); err == nil {
			w.WriteHeader(s)
		}
		_ = json.NewEncoder(w).Encode(e)
	}
}

// startUpstream serves h (the echo handler when nil) on addr
// ("127.0.0.1:0" when empty).
func startUpstream(t testing.TB, name string, h http.Handler) *Upstream {
	return startUpstreamOn(t, name, "127.0.0.1:0", h)
}

func startUpstreamOn(t testing.TB, name, addr string, h http.Handler) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("upstream %s: %v", name, err)
	}
	return serveUpstream(t, name, ln, h)
}

func serveUpstream(t testing.TB, name string, ln net.Listener, h http.Handler, opts ...func(*http.Server)) *Upstream {
	u := &Upstream{Name: name, Addr: ln.Addr().String()}
	u.Host = ln.Addr().(*net.TCPAddr).IP.String()
	u.Port = ln.Addr().(*net.TCPAddr).Port
	if h == nil {
		h = echoHandler(name)
	}
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.Requests.Add(1)
			h.ServeHTTP(w, r)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.Conns.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(u.srv)
	}
	go func() { _ = u.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = u.srv.Shutdown(ctx)
		_ = u.srv.Close()
	})
	return u
}

// closedPort returns a loopback port with nothing listening.
func closedPort(t testing.TB) int { return freePort(t) }

// rawExchange writes req on a new connection to addr and reads one
// response (status 0 and an error when there is none before timeout).
// With checkClose, closed reports whether the peer then closed the
// connection (waiting up to timeout for it).
func rawExchange(addr, req string, timeout time.Duration, checkClose bool) (status int, body string, closed bool, err error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, "", false, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, "", false, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, string(b), false, err
	}
	if !checkClose {
		return resp.StatusCode, string(b), false, nil
	}
	_, rerr := br.ReadByte()
	closed = rerr == io.EOF || errors.Is(rerr, net.ErrClosed) || errors.Is(rerr, syscall.ECONNRESET)
	return resp.StatusCode, string(b), closed, nil
}

// needTool skips the test when an external client is not installed.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("SKIP: %s is not installed", name)
	}
	return p
}

// runCmd runs an external client with a deadline and returns its output.
func runCmd(t testing.TB, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// hcmTmpl wraps a route_config (and extra HCM fields) into a listener
// named "l" on {{port "http"}}; used by most tests via fmt.Sprintf.
const routerFilter = `
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router`

const hcmType = `type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`

func errorsAs(err error, target any) bool { return errors.As(err, target) }

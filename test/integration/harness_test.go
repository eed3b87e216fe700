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
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/legate-proxy/legate/test/legatetest"
)

func TestMain(m *testing.M) {
	os.Exit(legatetest.Main(m))
}

// thisDir is the directory holding this package's sources.
func thisDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Legate is one running legate process, started from a port template.
type Legate struct {
	*legatetest.Process
	t     testing.TB
	ports map[string]int
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
			p := legatetest.FreePort(t)
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

// startLegate renders the config (with fresh ports on each try), starts
// legate with -c, --drain-time-s 5 and extra args and waits until admin
// /ready answers 200 LIVE. At cleanup it stops legate with SIGTERM and
// requires exit status 0; on failure its stderr is logged.
func startLegate(t testing.TB, tmpl string, data any, args ...string) *Legate {
	t.Helper()
	var ports map[string]int
	p := legatetest.StartRetry(t, func() (string, legatetest.Options) {
		var cfg string
		cfg, ports = renderConfig(t, tmpl, data)
		admin, ok := ports["admin"]
		if !ok {
			t.Fatalf("starting legate: config has no {{port \"admin\"}}")
		}
		return cfg, legatetest.Options{AdminPort: admin, Args: append([]string{"--drain-time-s", "5"}, args...)}
	})
	return &Legate{Process: p, t: t, ports: ports}
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
func closedPort(t testing.TB) int { return legatetest.FreePort(t) }

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

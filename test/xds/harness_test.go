// Package xds_test drives the real legate binary from an in-process
// management server (go-control-plane's pkg/server/v3 and pkg/cache/v3) on
// loopback: state-of-the-world and delta, ADS and per-type streams, NACKs,
// hitless updates under load, control plane restarts, Envoy's dynamic-config
// examples, and legate-cp end to end.
package xds_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"

	// Types a config dump may hold inside Any: protojson resolves them
	// through the global registry, as any tool reading Envoy's dump does.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/legate-proxy/legate/test/legatetest"
)

func TestMain(m *testing.M) {
	os.Exit(legatetest.Main(m))
}

// drainSeconds is legate's --drain-time-s in these tests: short, so removed
// listeners and stopped processes finish quickly.
const drainSeconds = "2"

// Legate is one running legate.
type Legate struct {
	*legatetest.Process
}

// startLegate starts legate on the bootstrap that render returns for a
// fresh admin port (retrying when a port was taken in between) and waits
// for /ready to say LIVE, which for a dynamic bootstrap means the initial
// CDS and LDS fetches are done.
func startLegate(t *testing.T, render func(adminPort int) string, args ...string) *Legate {
	t.Helper()
	p := legatetest.StartRetry(t, func() (string, legatetest.Options) {
		admin := legatetest.FreePort(t)
		return render(admin), legatetest.Options{AdminPort: admin,
			Args: append([]string{"--drain-time-s", drainSeconds}, args...)}
	})
	return &Legate{Process: p}
}

// Stats is /stats as name → value.
func (l *Legate) Stats(t testing.TB) map[string]string {
	t.Helper()
	body, err := get(l.AdminURL("/stats"))
	if err != nil {
		t.Fatalf("admin /stats: %v", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = v
		}
	}
	return m
}

// Stat is one stat's integer value; ok is false when absent.
func (l *Legate) Stat(t testing.TB, name string) (int64, bool) {
	t.Helper()
	v, ok := l.Stats(t)[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// waitStat polls until the stat satisfies cond.
func (l *Legate) waitStat(t testing.TB, name string, what string, cond func(int64) bool) int64 {
	t.Helper()
	var last int64
	var seen bool
	eventually(t, waitTimeout, func() bool {
		last, seen = l.Stat(t, name)
		return seen && cond(last)
	}, func() string {
		if !seen {
			return fmt.Sprintf("stat %s (%s): absent", name, what)
		}
		return fmt.Sprintf("stat %s (%s): last value %d", name, what, last)
	})
	return last
}

// ConfigDump fetches /config_dump (with query, e.g. "?resource=...") and
// decodes it as envoy.admin.v3.ConfigDump, the way tools that read Envoy's
// dump do.
func (l *Legate) ConfigDump(t testing.TB, query string) *adminv3.ConfigDump {
	t.Helper()
	body, err := get(l.AdminURL("/config_dump" + query))
	if err != nil {
		t.Fatalf("admin /config_dump%s: %v", query, err)
	}
	var d adminv3.ConfigDump
	if err := protojson.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("/config_dump%s is not an envoy.admin.v3.ConfigDump: %v\n%.2000s", query, err, body)
	}
	return &d
}

// waitTimeout bounds every wait for legate or a control plane to converge:
// generous, since make test runs this suite beside every other package on
// a small machine, and again against race-detector builds.
const waitTimeout = 60 * time.Second

// eventually polls cond until it holds, failing with describe() after the
// deadline.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, describe())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

var adminClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}

// get returns the body of a 200 answer to GET url.
func get(url string) (string, error) {
	resp, err := adminClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, b)
	}
	return string(b), nil
}

// Upstream is a loopback HTTP server that answers every request with its
// name (body and X-Upstream header).
type Upstream struct {
	Name     string
	Port     int
	Requests atomic.Int64
}

func startUpstream(t testing.TB, name string) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("upstream %s: %v", name, err)
	}
	u := &Upstream{Name: name, Port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.Requests.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Upstream", name)
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, name)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	})
	return u
}

// proxyClient sends requests through legate's listeners; each test's
// connections are its own.
func proxyClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 128,
			MaxIdleConns:        256,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// answer is what one request through legate got.
type answer struct {
	Status int
	Body   string
	Header http.Header
	Proto  int // HTTP major version
}

func fetch(c *http.Client, url string) (answer, error) {
	resp, err := c.Get(url)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{Status: resp.StatusCode, Body: string(b), Header: resp.Header, Proto: resp.ProtoMajor}, nil
}

// waitUpstream polls url until a 200 answer comes from upstream name.
func waitUpstream(t testing.TB, c *http.Client, url, name string) {
	t.Helper()
	var last answer
	var lastErr error
	eventually(t, waitTimeout, func() bool {
		last, lastErr = fetch(c, url)
		return lastErr == nil && last.Status == http.StatusOK && last.Body == name
	}, func() string {
		if lastErr != nil {
			return fmt.Sprintf("GET %s: want an answer from %s; last error: %v", url, name, lastErr)
		}
		return fmt.Sprintf("GET %s: want an answer from %s; last: %d %.200q", url, name, last.Status, last.Body)
	})
}

// waitRefused polls until nothing accepts connections on addr.
func waitRefused(t testing.TB, addr string) {
	t.Helper()
	eventually(t, waitTimeout, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}, func() string { return addr + " still accepts connections" })
}

// Load keeps many keep-alive connections busy with GETs and counts the
// outcomes: anything but a 200 from one of the expected upstreams, or a
// transport error, is a failure.
type Load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstFails []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(t testing.TB, url string, workers int, valid func(answer) bool) *Load {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: workers * 2, MaxIdleConns: workers * 4, IdleConnTimeout: time.Minute}
	// Cleanups run last first: the workers stop before the connections close.
	t.Cleanup(tr.CloseIdleConnections)
	return startLoadClient(t, &http.Client{Timeout: 10 * time.Second, Transport: tr}, url, workers, valid)
}

// startLoadClient is startLoad through the given client (an HTTP/2
// transport, say), shared by all workers.
func startLoadClient(t testing.TB, c *http.Client, url string, workers int, valid func(answer) bool) *Load {
	l := &Load{stop: make(chan struct{})}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				a, err := fetch(c, url)
				switch {
				case err != nil:
					l.fail(err.Error())
				case a.Status != http.StatusOK || !valid(a):
					l.fail(fmt.Sprintf("%d %.100q", a.Status, a.Body))
				default:
					l.ok.Add(1)
				}
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *Load) fail(what string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.firstFails) < 10 {
		l.firstFails = append(l.firstFails, time.Now().Format("15:04:05.000")+" "+what)
	}
	l.mu.Unlock()
}

func (l *Load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// Stop ends the load and returns the counts and the first failures.
func (l *Load) Stop() (ok, failed int64, fails []string) {
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed.Load(), append([]string(nil), l.firstFails...)
}

// waitProgress waits until at least n more requests succeeded, so that
// "zero failures" is asserted over real traffic.
func (l *Load) waitProgress(t testing.TB, n int64) {
	t.Helper()
	start := l.ok.Load()
	eventually(t, waitTimeout, func() bool { return l.ok.Load()-start >= n },
		func() string {
			l.mu.Lock()
			defer l.mu.Unlock()
			return fmt.Sprintf("load made no progress: %d ok, %d failed, first failures %q", l.ok.Load(), l.failed.Load(), l.firstFails)
		})
}

// Dyn is legate on a fresh control plane in one mode, with one HTTP
// listener port.
type Dyn struct {
	CP      *ControlPlane
	Legate  *Legate
	Port    int
	URL     string // path on the listener
	Version string // of the first snapshot
}

// startDyn serves world(port) for a fresh listener port, starts legate on
// the control plane in mode m, and waits until path answers from upstream
// first.
func startDyn(t *testing.T, m Mode, path, first string, world func(port int) World) *Dyn {
	t.Helper()
	d := &Dyn{CP: startControlPlane(t), Port: legatetest.FreePort(t)}
	d.Version = d.CP.Set(world(d.Port).Resources())
	d.Legate = startLegate(t, func(admin int) string { return m.Bootstrap(d.CP.Port, admin) })
	d.URL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port)) + path
	waitUpstream(t, proxyClient(), d.URL, first)
	return d
}

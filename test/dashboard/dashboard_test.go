// Package dashboard loads the admin dashboard of the real legate binary in
// Debian's chromium, under traffic, checks that the charts fill with data
// and saves a full-page screenshot as a test artifact.
package dashboard

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/legate-proxy/legate/test/legatetest"
)

func TestMain(m *testing.M) {
	// Without chromium the test skips, so it need not wait for a build.
	os.Exit(legatetest.Main(m, legatetest.BuildIf(chromiumPath() != "")))
}

// chromiumPath finds Debian's chromium: $CHROMIUM, /usr/bin/chromium, or
// chromium on $PATH; "" when absent.
func chromiumPath() string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// artifactDir is $LEGATE_ARTIFACTS, or bin/artifacts in the repository
// (bin/ is gitignored).
func artifactDir(t *testing.T) string {
	dir := os.Getenv("LEGATE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(legatetest.RepoRoot(), "bin", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

// serve runs h on a loopback port until the test ends.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// upstream answers "/" at once, "/slow" after a few milliseconds and
// "/fail" with 503, so the charts have latency spread and errors.
func upstream(t *testing.T) (port int) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
		case "/slow":
			time.Sleep(25 * time.Millisecond)
			io.WriteString(w, strings.Repeat("slow ", 200))
		default:
			io.WriteString(w, strings.Repeat("hello ", 100))
		}
	}))
	_, p, _ := net.SplitHostPort(addr)
	port, _ = strconv.Atoi(p)
	return port
}

// zipkinCollector accepts span uploads and counts them.
func zipkinCollector(t *testing.T) (port int, posts *atomic.Int64) {
	posts = &atomic.Int64{}
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	_, p, _ := net.SplitHostPort(addr)
	port, _ = strconv.Atoi(p)
	return port, posts
}

type ports struct{ admin, listener, upstream, zipkin int }

func config(p ports) string {
	tr := `
          tracing:
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON`
	zc := fmt.Sprintf(`
  - name: zipkin
    type: STATIC
    load_assignment:
      cluster_name: zipkin
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]`, p.zipkin)
	return fmt.Sprintf(`admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %d}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http%s
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: service}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: service
    type: STATIC
    load_assignment:
      cluster_name: service
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]%s
`, p.admin, p.listener, tr, p.upstream, zc)
}

// traffic sends requests through the proxy until ctx ends: every tenth
// fails with 503, every fifth is slow.
func traffic(ctx context.Context, addr string, sent *atomic.Int64) {
	c := &http.Client{Timeout: 10 * time.Second}
	for i := 0; ctx.Err() == nil; i++ {
		path := "/"
		switch {
		case i%10 == 9:
			path = "/fail"
		case i%5 == 2:
			path = "/slow"
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		if resp, err := c.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			sent.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// pageState is what the page shows, read from its DOM.
type pageState struct {
	ListenerQPS   float64  `json:"listenerQPS"`
	ListenerP99   float64  `json:"listenerP99"`
	ListenerErr   float64  `json:"listenerErr"`
	ClusterQPS    float64  `json:"clusterQPS"`
	ChartPoints   int      `json:"chartPoints"`
	LatencyPoints int      `json:"latencyPoints"`
	Hosts         []string `json:"hosts"`
	HostHealth    []string `json:"hostHealth"`
	Class5xx      string   `json:"class5xx"`
	CPU           string   `json:"cpu"`
	Memory        string   `json:"memory"`
	ProcPoints    int      `json:"procPoints"`
	State         string   `json:"state"`
	Resources     []string `json:"resources"`
}

// readyJS is true, as the page state, once the listener and cluster cards
// show request rates, the request chart has a few points and the host table
// has rows.
const readyJS = `(() => {
  const card = (kind, name) => document.querySelector('article.card[data-kind="' + kind + '"][data-name="' + name + '"]');
  const val = (el, cls) => { const v = el && el.querySelector('.value.' + cls); return v ? parseFloat(v.dataset.value) : NaN; };
  const pts = (el, series) => { const p = el && el.querySelector('path[data-series="' + series + '"]'); return p ? parseInt(p.dataset.points, 10) : 0; };
  const l = card("listener", "ingress"), c = card("cluster", "service");
  if (!l || !c) return false;
  const s = {
    listenerQPS: val(l, "qps"), listenerP99: val(l, "p99"), listenerErr: val(l, "err"), clusterQPS: val(c, "qps"),
    chartPoints: pts(l, "qps"), latencyPoints: pts(l, "p99"),
    hosts: [...c.querySelectorAll("tr.host")].map(r => r.dataset.address),
    hostHealth: [...c.querySelectorAll("tr.host td.health")].map(td => td.textContent),
    class5xx: (l.querySelector('[data-class="5xx"]') || {}).textContent || "",
    cpu: document.getElementById("cpu").textContent, memory: document.getElementById("mem").textContent,
    procPoints: pts(document.getElementById("chart-cpu"), "cpu"),
    state: document.getElementById("state").textContent,
    resources: performance.getEntriesByType("resource").map(e => e.name),
  };
  const ok = s.listenerQPS > 0 && s.clusterQPS > 0 && s.chartPoints >= 5 && s.latencyPoints >= 3 &&
    s.hosts.length > 0 && s.listenerErr > 0 && s.procPoints >= 3 && s.cpu.endsWith("%");
  return ok ? s : false;
})()`

// diagnoseJS is what the page says when it never gets ready.
const diagnoseJS = `document.body.innerText.slice(0, 3000)`

func TestDashboardInBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium is not installed (apt-get install chromium): skipping the dashboard browser test")
	}

	upPort := upstream(t)
	zipkinPort, zipkinPosts := zipkinCollector(t)

	pick := func() ports {
		return ports{admin: legatetest.FreePort(t), listener: legatetest.FreePort(t), upstream: upPort, zipkin: zipkinPort}
	}
	var p ports
	legatetest.StartRetry(t, func() (string, legatetest.Options) {
		p = pick()
		return config(p), legatetest.Options{AdminPort: p.admin, Args: []string{"--drain-time-s", "1"}}
	})

	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); traffic(trafficCtx, fmt.Sprintf("127.0.0.1:%d", p.listener), &sent) }()
	t.Cleanup(func() { stopTraffic(); wg.Wait() })

	dataURL := fmt.Sprintf("http://127.0.0.1:%d/dashboard/data", p.admin)
	if resp, err := http.Get(dataURL); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s; the admin server serves no dashboard", dataURL, resp.Status)
		}
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(1440, 1000),
	)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	adminURL := fmt.Sprintf("http://127.0.0.1:%d/", p.admin)
	// The first Run starts the browser; it carries no timeout, as a timeout
	// there would end the browser with it.
	if err := chromedp.Do(browser, chromedp.Navigate(adminURL)); err != nil {
		t.Fatalf("loading %s in chromium: %v", adminURL, err)
	}
	screenshot := func(name string) {
		sctx, cancel := context.WithTimeout(browser, 60*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot: %v", err)
			return
		}
		path := filepath.Join(artifactDir(t), name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Errorf("screenshot: %v", err)
			return
		}
		t.Logf("screenshot: %s", path)
	}

	wctx, cancelWait := context.WithTimeout(browser, 90*time.Second)
	st, err := chromedp.Run(wctx, chromedp.Poll[pageState](readyJS,
		chromedp.WithPollingInterval(250*time.Millisecond), chromedp.WithPollingTimeout(80*time.Second)))
	cancelWait()
	if err != nil {
		dctx, cancel := context.WithTimeout(browser, 10*time.Second)
		text, _ := chromedp.Run(dctx, chromedp.Evaluate[string](diagnoseJS))
		cancel()
		screenshot("dashboard-failure.png")
		t.Fatalf("the dashboard never showed traffic (%d requests sent): %v\npage text:\n%s", sent.Load(), err, text)
	}
	t.Logf("page: %+v", st)

	upstreamAddr := fmt.Sprintf("127.0.0.1:%d", upPort)
	if len(st.Hosts) != 1 || st.Hosts[0] != upstreamAddr || st.HostHealth[0] != "healthy" {
		t.Errorf("host rows %q %q, want one healthy %s", st.Hosts, st.HostHealth, upstreamAddr)
	}
	// Every tenth request fails: the 5xx class shows a rate above zero.
	if !strings.HasPrefix(st.Class5xx, "5xx ") || strings.HasPrefix(st.Class5xx, "5xx 0.00/s") {
		t.Errorf("5xx legend %q, want a rate above zero", st.Class5xx)
	}
	if st.ListenerP99 <= 0 {
		t.Errorf("listener p99 %v, want > 0 ms", st.ListenerP99)
	}
	if st.State != "LIVE" {
		t.Errorf("state badge %q, want LIVE", st.State)
	}
	if !strings.HasSuffix(st.Memory, "RSS") || strings.HasPrefix(st.Memory, "–") {
		t.Errorf("memory %q", st.Memory)
	}
	// Offline: nothing but the admin address was fetched.
	for _, r := range st.Resources {
		if !strings.HasPrefix(r, adminURL) {
			t.Errorf("the page fetched %s, outside the admin address", r)
		}
	}

	t.Run("traces", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(browser, 60*time.Second)
		defer cancel()
		n, err := chromedp.Run(tctx, chromedp.Poll[int](`document.querySelectorAll("tr.trace").length || false`,
			chromedp.WithPollingInterval(250*time.Millisecond), chromedp.WithPollingTimeout(50*time.Second)))
		if err != nil {
			t.Fatalf("no trace rows (%d requests sent, %d uploads to the collector): %v", sent.Load(), zipkinPosts.Load(), err)
		}
		if err := chromedp.Do(tctx, chromedp.Click(chromedp.CSS("tr.trace"), chromedp.NodeVisible)); err != nil {
			t.Fatalf("clicking a trace: %v", err)
		}
		rows, err := chromedp.Run(tctx, chromedp.Poll[int](`document.querySelectorAll("#waterfall .span-row .span-bar").length || false`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
		if err != nil {
			t.Fatalf("the waterfall did not open: %v", err)
		}
		// The first span's tags are open; Envoy tags every ingress span
		// with the request's method.
		tags, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.querySelector("#waterfall .span-tags").innerText`))
		if err != nil || !strings.Contains(tags, "http.method") {
			t.Errorf("the first span's tags (%v):\n%s", err, tags)
		}
		t.Logf("%d trace rows; the first has %d spans", n, rows)
	})

	// A few more seconds of history make a screenshot worth reading.
	moreCtx, cancelMore := context.WithTimeout(browser, 40*time.Second)
	_, err = chromedp.Run(moreCtx, chromedp.Poll[bool](`parseInt(document.querySelector('article[data-kind="listener"] path[data-series="qps"]').dataset.points, 10) >= 12`,
		chromedp.WithPollingInterval(250*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	cancelMore()
	if err != nil {
		t.Logf("the charts did not reach 12 points (%v); taking the screenshot anyway", err)
	}
	screenshot("dashboard.png")
}

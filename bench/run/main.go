// Command run benchmarks Legate next to nginx and haproxy (`make bench`).
//
// Each proxy runs alone with one worker, pinned to one core (--proxy-cpu),
// in front of the same upstream; wrk drives it over keep-alive connections
// from the other core (--client-cpu), where the upstream also runs. The
// upstream is an nginx answering "ok" from memory: it costs a few µs per
// request, less than any Go server, so it is not what limits the run.
//
// For each proxy it reports requests/s, p50/p99 latency (from wrk), the
// proxy's CPU time per request (utime+stime over its process tree between
// the start and end of the measured run, from /proc/<pid>/stat) and its peak
// RSS (VmHWM summed over the tree), and Legate's CPU ratio to nginx. CPU per
// request is the figure to compare: it does not depend on which side of the
// run saturates first.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/legate-proxy/legate/internal/tooling/child"
)

type options struct {
	legate, nginx, haproxy, wrk string
	only                        string
	upstream                    string
	duration, warmup            time.Duration
	connections, threads        int
	proxyCPU, clientCPU         int
	noPin                       bool
	keep                        bool
	markdown                    bool
	scenario                    string
	idleConns                   int
	resets                      int
	resetDelay                  time.Duration
}

// result is one proxy's row; skipped rows carry the reason instead.
type result struct {
	name    string
	skipped string
	wrk     wrkResult
	cpu     time.Duration
	peakRSS int64
}

func (r result) cpuPerRequest() time.Duration {
	if r.wrk.Requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.wrk.Requests)
}

func main() {
	var o options
	flag.StringVar(&o.legate, "legate", "bin/legate", "legate binary")
	flag.StringVar(&o.nginx, "nginx", "nginx", "nginx binary (also serves the upstream unless --upstream go)")
	flag.StringVar(&o.haproxy, "haproxy", "haproxy", "haproxy binary")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	flag.StringVar(&o.only, "proxies", "legate,nginx,haproxy", "comma-separated proxies to run, in order")
	flag.StringVar(&o.upstream, "upstream", "nginx", "upstream server: nginx (static reply) or go (net/http, in this process)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured wrk run per proxy")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured wrk run before each measurement")
	flag.IntVar(&o.connections, "connections", 32, "wrk keep-alive connections")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.IntVar(&o.proxyCPU, "proxy-cpu", 1, "CPU the proxy is pinned to")
	flag.IntVar(&o.clientCPU, "client-cpu", 0, "CPU wrk, the upstream and this program are pinned to")
	flag.BoolVar(&o.noPin, "no-pin", false, "do not pin anything to CPUs")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with configs and logs")
	flag.BoolVar(&o.markdown, "markdown", false, "also print the results as a Markdown table (for docs/performance.md)")
	flag.StringVar(&o.scenario, "scenario", "throughput", "throughput (wrk, CPU per request), idle (memory per idle keep-alive connection) or rapid-reset (HTTP/2 HEADERS+RST_STREAM flood)")
	flag.IntVar(&o.idleConns, "idle-conns", 10000, "idle: connections per proxy and protocol")
	flag.IntVar(&o.resets, "resets", 10000, "rapid-reset: HEADERS+RST_STREAM pairs to send")
	flag.DurationVar(&o.resetDelay, "reset-upstream-delay", 10*time.Millisecond, "rapid-reset: how long the counting upstream takes to answer")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	var wrk string
	switch o.scenario {
	case "throughput":
		var err error
		if wrk, err = exec.LookPath(o.wrk); err != nil {
			return fmt.Errorf("wrk not found (apt-get install wrk): %w", err)
		}
	case "idle":
		maxConns = o.idleConns + 512
	case "rapid-reset":
	default:
		return fmt.Errorf("unknown --scenario %q (throughput, idle or rapid-reset)", o.scenario)
	}
	pin := !o.noPin
	if pin {
		if _, err := exec.LookPath("taskset"); err != nil {
			fmt.Fprintln(out, "note: taskset not found (apt-get install util-linux); running unpinned")
			pin = false
		} else if runtime.NumCPU() < 2 || o.proxyCPU == o.clientCPU {
			fmt.Fprintf(out, "note: %d CPU(s) visible; running unpinned\n", runtime.NumCPU())
			pin = false
		}
	}
	// Everything but the proxy shares the client CPU, this program included
	// (it may host the Go upstream).
	if pin {
		if err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(o.clientCPU), strconv.Itoa(os.Getpid())).Run(); err != nil {
			return fmt.Errorf("pin self to CPU %d: %w", o.clientCPU, err)
		}
	}
	pinned := func(cpu int, argv []string) []string {
		if !pin {
			return argv
		}
		return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}

	dir, err := os.MkdirTemp("", "legate-bench-")
	if err != nil {
		return err
	}
	// nginx workers drop to an unprivileged user when started as root.
	_ = os.Chmod(dir, 0o755)
	if o.keep {
		fmt.Fprintln(out, "configs and logs in", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	if o.scenario == "rapid-reset" {
		return runReset(ctx, o, out, dir, pinned)
	}
	upPort, err := freePort()
	if err != nil {
		return err
	}
	upstreamDesc, stopUpstream, err := startUpstream(ctx, o, dir, upPort, pinned)
	if err != nil {
		return err
	}
	defer stopUpstream()

	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		// Other work on the host inflates CPU per request; say how busy it was.
		fmt.Fprintf(out, "host: %d CPUs, load average %s\n", runtime.NumCPU(), strings.Join(strings.Fields(string(la))[:3], " "))
	}
	fmt.Fprintf(out, "upstream: %s on 127.0.0.1:%d\n", upstreamDesc, upPort)
	if o.scenario == "idle" {
		return runIdle(ctx, o, out, dir, upPort, pinned)
	}
	fmt.Fprintf(out, "load: wrk -t%d -c%d -d%s --latency (after a %s warm-up)", o.threads, o.connections, o.duration, o.warmup)
	if pin {
		fmt.Fprintf(out, "; proxy on CPU %d, wrk and upstream on CPU %d\n\n", o.proxyCPU, o.clientCPU)
	} else {
		fmt.Fprintf(out, "; unpinned\n\n")
	}

	selected, err := selectedProxies(o)
	if err != nil {
		return err
	}
	var results []result
	for _, p := range selected {
		name := p.name
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(out, "%s: ", name)
		r := benchProxy(ctx, o, p, dir, upPort, wrk, pinned)
		if r.skipped != "" {
			fmt.Fprintf(out, "skipped: %s\n", r.skipped)
		} else {
			fmt.Fprintf(out, "%.0f req/s, %.1f CPU-µs/req\n", r.wrk.RPS, us(r.cpuPerRequest()))
		}
		results = append(results, r)
	}
	fmt.Fprintln(out)
	printTable(out, results)
	if o.markdown {
		fmt.Fprintln(out)
		printMarkdown(out, results)
	}
	return nil
}

// benchProxy starts p, checks it proxies, warms it up, measures one wrk run
// and stops it. Anything that goes wrong skips the proxy with a reason.
func benchProxy(ctx context.Context, o options, p proxy, dir string, upPort int, wrk string, pinned func(int, []string) []string) result {
	r := result{name: p.name}
	bin, err := exec.LookPath(p.bin)
	if err != nil {
		r.skipped = fmt.Sprintf("%s not found (%s)", p.bin, p.install)
		return r
	}
	port, err := freePort()
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	pdir := filepath.Join(dir, p.name)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		r.skipped = err.Error()
		return r
	}
	argv, err := p.command(bin, pdir, port, upPort)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	logPath := filepath.Join(pdir, "output.log")
	proc, err := startProcess(pinned(o.proxyCPU, argv), logPath)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	defer proc.Stop(stopGrace)

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := child.WaitHTTP(ctx, url, proc, startTimeout); err != nil {
		r.skipped = fmt.Sprintf("did not start proxying: %v%s", err, logTail(logPath))
		return r
	}
	if o.warmup > 0 {
		if _, err := runWrk(ctx, wrk, o, o.warmup, url, pinned); err != nil {
			r.skipped = fmt.Sprintf("warm-up: %v", err)
			return r
		}
	}

	pid := proc.Pid()
	before, err := treeCPU(pid)
	if err != nil {
		r.skipped = fmt.Sprintf("read CPU time: %v", err)
		return r
	}
	res, err := runWrk(ctx, wrk, o, o.duration, url, pinned)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	after, err := treeCPU(pid)
	if err != nil {
		r.skipped = fmt.Sprintf("read CPU time (did it exit?): %v%s", err, logTail(logPath))
		return r
	}
	if r.peakRSS, err = treePeakRSS(pid); err != nil {
		r.skipped = fmt.Sprintf("read peak RSS: %v", err)
		return r
	}
	r.wrk, r.cpu = res, after-before
	if res.Requests == 0 {
		r.skipped = "wrk completed no requests"
	}
	return r
}

func runWrk(ctx context.Context, wrk string, o options, d time.Duration, url string, pinned func(int, []string) []string) (wrkResult, error) {
	argv := pinned(o.clientCPU, []string{wrk,
		"-t" + strconv.Itoa(o.threads), "-c" + strconv.Itoa(o.connections),
		"-d" + strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s",
		"--timeout", "5s", "--latency", url})
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	return parseWrk(string(out))
}

// startUpstream starts the shared upstream and returns a description and a
// stop function.
func startUpstream(ctx context.Context, o options, dir string, port int, pinned func(int, []string) []string) (string, func(), error) {
	switch o.upstream {
	case "go":
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return "", nil, err
		}
		body := []byte("ok\n")
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		})}
		go func() { _ = srv.Serve(ln) }()
		return "Go net/http server (in the bench process)", func() { _ = srv.Close() }, nil
	case "nginx":
		bin, err := exec.LookPath(o.nginx)
		if err != nil {
			return "", nil, fmt.Errorf("the upstream needs nginx (apt-get install nginx-light, or use --upstream go): %w", err)
		}
		udir := filepath.Join(dir, "upstream")
		if err := os.MkdirAll(udir, 0o755); err != nil {
			return "", nil, err
		}
		argv, err := nginxUpstreamCommand(bin, udir, port)
		if err != nil {
			return "", nil, err
		}
		logPath := filepath.Join(udir, "output.log")
		proc, err := startProcess(pinned(o.clientCPU, argv), logPath)
		if err != nil {
			return "", nil, err
		}
		if err := child.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port), proc, startTimeout); err != nil {
			proc.Stop(stopGrace)
			return "", nil, fmt.Errorf("upstream nginx: %v%s", err, logTail(logPath))
		}
		return "nginx, 1 worker, static reply", func() { proc.Stop(stopGrace) }, nil
	}
	return "", nil, fmt.Errorf("unknown --upstream %q (nginx or go)", o.upstream)
}

// startTimeout bounds the wait for a proxy or the upstream to serve;
// stopGrace is how long one may take to exit after SIGTERM (a fast
// shutdown for all three proxies) before it is killed.
const (
	startTimeout = 20 * time.Second
	stopGrace    = 10 * time.Second
)

// startProcess runs argv with its stdout and stderr going to a new file at
// logPath, closed once the process has exited.
func startProcess(argv []string, logPath string) (*child.Process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p, err := child.Start(argv[0], argv, child.Options{
		Stdout: f,
		Stderr: f,
		OnExit: func(*child.Process) { f.Close() },
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 800 {
		b = b[len(b)-800:]
	}
	return "\n    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// ratio is r's CPU per request over nginx's, or "" when either is missing.
func ratio(r result, results []result) string {
	for _, n := range results {
		if n.name == "nginx" && n.skipped == "" && r.skipped == "" && n.cpuPerRequest() > 0 {
			return fmt.Sprintf("%.2f×", float64(r.cpuPerRequest())/float64(n.cpuPerRequest()))
		}
	}
	return ""
}

func row(r result, results []result) []string {
	if r.skipped != "" {
		return []string{r.name, "skipped", "", "", "", "", "", ""}
	}
	errs := strconv.FormatInt(r.wrk.Non2xx+r.wrk.SocketErrors, 10)
	return []string{
		r.name,
		fmt.Sprintf("%.0f", r.wrk.RPS),
		fmtLatency(r.wrk.P50),
		fmtLatency(r.wrk.P99),
		fmt.Sprintf("%.1f", us(r.cpuPerRequest())),
		ratio(r, results),
		fmt.Sprintf("%.1f MiB", float64(r.peakRSS)/(1<<20)),
		errs,
	}
}

var header = []string{"proxy", "req/s", "p50", "p99", "CPU-µs/req", "CPU vs nginx", "peak RSS", "errors"}

func printTable(out io.Writer, results []result) {
	rows := make([][]string, 0, len(results))
	for _, r := range results {
		rows = append(rows, row(r, results))
	}
	printRows(out, header, rows, false)
}

func printMarkdown(out io.Writer, results []result) {
	rows := make([][]string, 0, len(results))
	for _, r := range results {
		rows = append(rows, row(r, results))
	}
	printRows(out, header, rows, true)
}

// printRows prints a table aligned for a terminal, or as Markdown.
func printRows(out io.Writer, hdr []string, rows [][]string, markdown bool) {
	if markdown {
		fmt.Fprintln(out, "| "+strings.Join(hdr, " | ")+" |")
		fmt.Fprintln(out, "|"+strings.Repeat("---|", len(hdr)))
		for _, r := range rows {
			fmt.Fprintln(out, "| "+strings.Join(r, " | ")+" |")
		}
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

func fmtLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0fµs", us(d))
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

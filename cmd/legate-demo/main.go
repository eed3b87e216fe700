// Command legate-demo runs Legate's front-proxy case study on one machine.
//
// It starts a small DNS server on loopback that answers for the names
// service1 and service2, three replicas of each service (the demo-service
// binary) on their own loopback addresses, and Legate with an Envoy v3
// bootstrap whose STRICT_DNS clusters resolve those names through that DNS
// server. Linux routes all of 127.0.0.0/8 to the loopback interface, so the
// replicas need no set-up and nothing on the machine changes.
//
// Legate traces every request: the demo runs a minimal Zipkin collector
// where the config's zipkin cluster points and prints a line per report it
// receives, and prints Legate's access log (its stdout) with an
// [access-log] prefix. The admin page shows the live dashboard and the
// recent traces.
//
// Without --check it prints curl commands to try and runs until Ctrl-C.
// With --check it sends requests through Legate, verifies that every replica
// answers and that the requests show up as spans, dashboard traces and
// access-log lines, and exits 0 or 1.
//
// With --xds there is no DNS server: legate-cp (cmd/legate-cp) serves Legate
// its listener, clusters and endpoints over ADS, and the replicas register
// themselves in legate-cp's service registry (see xds.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	frontproxy "github.com/legate-proxy/legate/examples/front-proxy"
	"github.com/legate-proxy/legate/internal/tooling/child"
)

type options struct {
	legateBin    string
	serviceBin   string
	configPath   string
	ports        ports
	freePorts    bool
	check        bool
	requests     int
	logLevel     string
	startTimeout time.Duration

	// --xds mode: service discovery through legate-cp.
	xds     bool
	cpBin   string
	xdsPort int
	cpPort  int
}

// replica is one instance of a service; its address is what the DNS server
// returns for the service's name.
type replica struct {
	service string // "1" or "2"
	name    string // reported hostname, e.g. service1-a
	ip      net.IP
}

// demoReplicas are three replicas per service on 127.0.0.11-13 and 127.0.0.21-23.
func demoReplicas() []replica {
	var rs []replica
	for _, svc := range []int{1, 2} {
		for i, suffix := range []string{"a", "b", "c"} {
			rs = append(rs, replica{
				service: strconv.Itoa(svc),
				name:    fmt.Sprintf("service%d-%s", svc, suffix),
				ip:      net.IPv4(127, 0, 0, byte(10*svc+i+1)).To4(),
			})
		}
	}
	return rs
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "legate-demo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "legate-demo:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("legate-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.legateBin, "legate", "", "path of the legate binary (default: next to this program, else $PATH)")
	fs.StringVar(&o.serviceBin, "service", "", "path of the demo-service binary (default: next to this program, else $PATH)")
	fs.StringVar(&o.configPath, "config", "", "Envoy bootstrap to run instead of the embedded examples/front-proxy/legate-demo.yaml")
	fs.IntVar(&o.ports.HTTP, "http-port", 0, "HTTP listener port (default: from the config, 8080)")
	fs.IntVar(&o.ports.HTTPS, "https-port", 0, "HTTPS listener port (default: from the config, 8443)")
	fs.IntVar(&o.ports.Admin, "admin-port", 0, "admin port (default: from the config, 9901)")
	fs.IntVar(&o.ports.DNS, "dns-port", 0, "port of the demo's DNS server on 127.0.0.1 (default: from the config, 15353)")
	fs.IntVar(&o.ports.Service, "service-port", 0, "port the replicas listen on (default: from the config, 8080)")
	fs.IntVar(&o.ports.Zipkin, "zipkin-port", 0, "port of the demo's Zipkin collector on 127.0.0.1 (default: from the config, 9411)")
	fs.BoolVar(&o.freePorts, "free-ports", false, "pick free ports for every port not given by a flag (for tests)")
	fs.BoolVar(&o.check, "check", false, "send requests through Legate, verify every replica answers and the requests are traced and logged, then exit 0 or 1")
	fs.IntVar(&o.requests, "requests", 12, "requests per service in --check mode")
	fs.StringVar(&o.logLevel, "log-level", "info", "Legate's -l/--log-level")
	fs.DurationVar(&o.startTimeout, "start-timeout", 30*time.Second, "how long to wait for each component to come up")
	fs.BoolVar(&o.xds, "xds", false, "service discovery instead of DNS: run legate-cp, replicas that register with it, and Legate configured over ADS (see docs/control-plane.md)")
	fs.StringVar(&o.cpBin, "legate-cp", "", "path of the legate-cp binary for --xds (default: next to this program, else $PATH)")
	fs.IntVar(&o.xdsPort, "xds-port", 0, "legate-cp's xDS port on 127.0.0.1 with --xds (default 18000)")
	fs.IntVar(&o.cpPort, "cp-port", 0, "legate-cp's HTTP registry port on 127.0.0.1 with --xds (default 18001)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.requests < 3 {
		return options{}, errors.New("--requests must be at least 3 to reach every replica")
	}
	return o, nil
}

// findBinary resolves a flag value, else a file named name next to this
// program (make builds everything into bin/), else $PATH.
func findBinary(flagValue, name string) (string, error) {
	if flagValue != "" {
		if _, err := os.Stat(flagValue); err != nil {
			return "", fmt.Errorf("%s binary: %w", name, err)
		}
		return filepath.Abs(flagValue)
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := execLookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s binary not found next to legate-demo or in $PATH (run `make build`, or pass --%s): %w", name, flagFor[name], err)
	}
	return p, nil
}

var flagFor = map[string]string{"legate": "legate", "demo-service": "service", "legate-cp": "legate-cp"}

func run(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	if o.xds {
		if o.configPath != "" {
			return errors.New("--config and --xds exclude each other: in --xds mode the config comes from legate-cp")
		}
		return runXDS(ctx, o, stdout, stderr)
	}
	legateBin, err := findBinary(o.legateBin, "legate")
	if err != nil {
		return err
	}
	serviceBin, err := findBinary(o.serviceBin, "demo-service")
	if err != nil {
		return err
	}
	src := frontproxy.DemoConfig
	if o.configPath != "" {
		if src, err = os.ReadFile(o.configPath); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if o.freePorts {
		if err := fillFreePorts(&o.ports); err != nil {
			return err
		}
	}
	dc, err := prepareConfig(src, o.ports)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}

	tmp, err := os.MkdirTemp("", "legate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfgPath := filepath.Join(tmp, "legate.yaml")
	if err := os.WriteFile(cfgPath, dc.YAML, 0o600); err != nil {
		return err
	}

	reps := demoReplicas()
	if dc.DNSPort == 0 {
		fmt.Fprintln(stderr, "legate-demo: warning: the config's clusters do not use a loopback DNS resolver; service1/service2 must resolve some other way")
	} else {
		records := map[string][]net.IP{}
		for _, r := range reps {
			records["service"+r.service] = append(records["service"+r.service], r.ip)
		}
		dnsSrv, err := startDNS(net.JoinHostPort("127.0.0.1", strconv.Itoa(dc.DNSPort)), records)
		if err != nil {
			return err
		}
		defer dnsSrv.Close()
	}

	var obs observers
	if dc.ZipkinAddr != "" {
		zc, err := startCollector(dc.ZipkinAddr, dc.ZipkinPath, stdout)
		if err != nil {
			return fmt.Errorf("%w (is a Zipkin already running there? pass --zipkin-port)", err)
		}
		// Deferred before the children's stop, so it runs after Legate
		// has stopped and sent its last spans.
		defer zc.close()
		obs.zipkin = zc
	}

	// Children report here when they exit; one that exits before we stop it
	// ends the demo.
	exited := make(chan *child.Process, len(reps)+1)
	var children []*child.Process
	defer func() {
		// Legate first, so that it drains before its upstreams go away.
		for i := len(children) - 1; i >= 0; i-- {
			stopChild(children[i], 10*time.Second)
		}
	}()

	for _, r := range reps {
		addr := net.JoinHostPort(r.ip.String(), strconv.Itoa(dc.Service))
		c, err := startChild(r.name, serviceBin, []string{"--listen", addr, "--service-id", r.service, "--name", r.name}, stderr, exited)
		if err != nil {
			return err
		}
		children = append(children, c)
	}
	for i, r := range reps {
		addr := net.JoinHostPort(r.ip.String(), strconv.Itoa(dc.Service))
		if err := child.WaitHTTP(ctx, "http://"+addr+"/healthz", children[i], o.startTimeout); err != nil {
			return fmt.Errorf("replica %s: %w", r.name, err)
		}
	}

	// Legate's stdout carries only its access log; give it its own prefix
	// (and, for --check, count the lines of the demo's requests).
	legateErr := &prefixWriter{prefix: []byte("[legate] "), w: stderr}
	legateOut := legateErr
	if dc.StdoutAccessLog {
		obs.accessLog = newLineCounter(accessLogPatterns[:]...)
		legateOut = &prefixWriter{prefix: []byte("[access-log] "), w: stdout, onLine: obs.accessLog.observe}
	}
	legate, err := startChildSplit("legate", legateBin, []string{"-c", cfgPath, "-l", o.logLevel, "--drain-time-s", "2"}, legateOut, legateErr, exited)
	if err != nil {
		return err
	}
	children = append(children, legate)
	if err := child.WaitTCP(ctx, dc.HTTPAddr, legate, o.startTimeout); err != nil {
		return fmt.Errorf("legate: %w", err)
	}

	if o.check {
		return check(ctx, dc, reps, o.requests, o.startTimeout, obs, stdout)
	}

	printUsage(stdout, dc)
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nstopping…")
		return nil
	case c := <-exited:
		return fmt.Errorf("%s exited unexpectedly: %v", c.Name(), c.Err())
	}
}

// The trace context printUsage suggests sending, easy to spot in the
// dashboard and in the [zipkin] lines.
const (
	demoTraceID      = "0000000000c0ffee"
	demoParentSpanID = "00000000000000a1"
)

func printUsage(w io.Writer, dc *demoConfig) {
	host := func(addr string) string {
		h, p, _ := net.SplitHostPort(addr)
		if h == "127.0.0.1" {
			h = "localhost"
		}
		return net.JoinHostPort(h, p)
	}
	fmt.Fprintf(w, "\nLegate is serving the front-proxy case study: 3 replicas each of service1 and service2.\nTry:\n\n")
	fmt.Fprintf(w, "  curl -s %s/service/1    # repeat: the hostname cycles service1-a, -b, -c\n", host(dc.HTTPAddr))
	fmt.Fprintf(w, "  curl -s %s/service/2\n", host(dc.HTTPAddr))
	if dc.HTTPSAddr != "" {
		fmt.Fprintf(w, "  curl -sk https://%s/service/2    # self-signed certificate; add --http2 for HTTP/2\n", host(dc.HTTPSAddr))
	}
	if dc.AdminAddr != "" {
		a := host(dc.AdminAddr)
		fmt.Fprintf(w, "  curl -s %s/stats/prometheus | grep upstream_rq_total\n", a)
		fmt.Fprintf(w, "  curl -s %s/clusters\n", a)
		fmt.Fprintf(w, "  curl -s %s/ready\n", a)
	}
	if dc.DNSPort != 0 {
		fmt.Fprintf(w, "\nservice1 and service2 are answered by the demo's DNS server: dig @127.0.0.1 -p %d service1\n", dc.DNSPort)
	}
	if dc.AdminAddr != "" {
		fmt.Fprintf(w, "\nDashboard: http://%s/\n", host(dc.AdminAddr))
		fmt.Fprintf(w, "  Live, per listener and cluster: requests per second, p50/p90/p99 latency, error rate,\n"+
			"  status classes, bytes in and out, host health; the proxy's CPU, memory and connections;\n"+
			"  and the latest traces, each with a waterfall. A request above appears there within seconds.\n")
	}
	if dc.ZipkinAddr != "" {
		fmt.Fprintf(w, "\nEvery request is traced: Legate reports its spans to the demo's Zipkin collector on %s\n"+
			"([zipkin] lines). To choose the trace id yourself (B3 headers; Legate joins the trace):\n", dc.ZipkinAddr)
		fmt.Fprintf(w, "  curl -s -H 'x-b3-traceid: %s' -H 'x-b3-spanid: %s' -H 'x-b3-sampled: 1' %s/service/1\n",
			demoTraceID, demoParentSpanID, host(dc.HTTPAddr))
	}
	if dc.StdoutAccessLog {
		fmt.Fprintf(w, "\nLegate writes an access-log line per request to its stdout ([access-log] lines, Envoy's default format).\n")
	}
	fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")
}

// fillFreePorts gives every unset port a free one on 127.0.0.1. The DNS port
// must be free for both UDP and TCP.
func fillFreePorts(p *ports) error {
	for _, f := range []*int{&p.HTTP, &p.HTTPS, &p.Admin, &p.Service, &p.Zipkin} {
		if *f != 0 {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("free port: %w", err)
		}
		*f = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	if p.DNS == 0 {
		for attempt := 0; ; attempt++ {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("free port: %w", err)
			}
			port := pc.LocalAddr().(*net.UDPAddr).Port
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			pc.Close()
			if err == nil {
				ln.Close()
				p.DNS = port
				break
			}
			if attempt == 20 {
				return fmt.Errorf("free port for DNS: %w", err)
			}
		}
	}
	return nil
}

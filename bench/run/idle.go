package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/legate-proxy/legate/internal/tooling/child"
)

// The idle scenario measures what an idle keep-alive connection costs a
// proxy: RSS before, with N connections open that have each completed one
// request and gone quiet, and after they have all closed. The figure is
// (RSS with the connections − RSS before) / N, for HTTP/1.1 and for h2c.
// Kernel socket buffers are not in a process's RSS, so this is the
// proxy's own per-connection state: buffers, goroutine stacks, structs.

// idleResult is one proxy × protocol row of the idle scenario.
type idleResult struct {
	proxy, proto string
	skipped      string
	conns        int
	before       int64 // VmRSS with no client connections
	idle         int64 // VmRSS with conns idle connections, settled
	after        int64 // VmRSS once they have closed, settled
}

func (r idleResult) perConn() float64 {
	if r.conns == 0 {
		return 0
	}
	return float64(r.idle-r.before) / float64(r.conns)
}

// raiseNoFile lifts the descriptor limit (to 2^20 when allowed to raise the
// hard limit, as root; else the soft limit to the hard one); the proxies
// started afterwards inherit it. haproxy wants two descriptors per
// connection it may hold.
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Max < 1<<20 {
		up := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return up.Cur, nil
		}
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}

func runIdle(ctx context.Context, o options, out io.Writer, dir string, upPort int, pinned func(int, []string) []string) error {
	limit, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	if uint64(o.idleConns)+64 > limit {
		return fmt.Errorf("--idle-conns %d needs more descriptors than RLIMIT_NOFILE allows (%d)", o.idleConns, limit)
	}
	fmt.Fprintf(out, "idle: %d keep-alive connections per proxy and protocol, one request each, then quiet\n\n", o.idleConns)
	selected, err := selectedProxies(o)
	if err != nil {
		return err
	}
	var results []idleResult
	for _, p := range selected {
		name := p.name
		for _, proto := range []string{"http/1.1", "h2c"} {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(out, "%s %s: ", name, proto)
			r := idleProxy(ctx, o, p, proto, dir, upPort, pinned)
			if r.skipped != "" {
				fmt.Fprintf(out, "skipped: %s\n", r.skipped)
			} else {
				fmt.Fprintf(out, "%.2f KB per idle connection\n", r.perConn()/1000)
			}
			results = append(results, r)
		}
	}
	fmt.Fprintln(out)
	printIdle(out, results, o.markdown)
	return nil
}

func idleProxy(ctx context.Context, o options, p proxy, proto, dir string, upPort int, pinned func(int, []string) []string) idleResult {
	r := idleResult{proxy: p.name, proto: proto}
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
	pdir := filepath.Join(dir, p.name+"-idle-"+strings.ReplaceAll(proto, "/", ""))
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		r.skipped = err.Error()
		return r
	}
	command := p.command
	if proto == "h2c" {
		command = p.h2cCommand
	}
	argv, err := command(bin, pdir, port, upPort)
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
	dial := dialIdleH1
	if proto == "h2c" {
		dial = dialIdleH2
	}
	// Up and proxying: a few requests also let lazily built state (the
	// upstream pool, runtime caches) exist before the baseline is taken.
	if err := child.Poll(ctx, proc, startTimeout, 50*time.Millisecond, func() error {
		c, err := dial(addr)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		r.skipped = fmt.Sprintf("did not start proxying: %v%s", err, logTail(logPath))
		return r
	}
	for range 20 {
		if c, err := dial(addr); err == nil {
			c.Close()
		}
	}
	pid := proc.Pid()
	if r.before, err = settledRSS(ctx, pid); err != nil {
		r.skipped = err.Error()
		return r
	}
	conns := make([]net.Conn, 0, o.idleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range o.idleConns {
		c, err := dial(addr)
		if err != nil {
			r.skipped = fmt.Sprintf("connection %d: %v%s", len(conns)+1, err, logTail(logPath))
			return r
		}
		conns = append(conns, c)
	}
	r.conns = len(conns)
	if r.idle, err = settledRSS(ctx, pid); err != nil {
		r.skipped = err.Error()
		return r
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if r.after, err = settledRSS(ctx, pid); err != nil {
		r.skipped = err.Error()
	}
	return r
}

// settledRSS waits until the process tree's resident set stops moving
// (idle timers, parking and the Go scavenger all act within seconds) and
// returns it: less than 1% change over three seconds, at most 40 s.
func settledRSS(ctx context.Context, pid int) (int64, error) {
	var hist []int64
	for i := 0; i < 40; i++ {
		rss, err := treeRSS(pid)
		if err != nil {
			return 0, fmt.Errorf("read RSS: %w", err)
		}
		hist = append(hist, rss)
		if n := len(hist); n >= 4 {
			lo, hi := hist[n-4], hist[n-4]
			for _, v := range hist[n-4:] {
				lo, hi = min(lo, v), max(hi, v)
			}
			if float64(hi-lo) < 0.01*float64(hi) {
				return rss, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return hist[len(hist)-1], nil
}

// dialIdleH1 opens a connection, completes one keep-alive GET on it and
// leaves it open.
func dialIdleH1(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	if err := readH1Response(bufio.NewReaderSize(c, 4096)); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// readH1Response reads one response with a content-length or chunked body
// (the upstream's "ok\n" is small) and checks it is a 200.
func readH1Response(br *bufio.Reader) error {
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		return fmt.Errorf("response %q", strings.TrimSpace(line))
	}
	length, chunked := -1, false
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		name, value, _ := strings.Cut(h, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			length, _ = strconv.Atoi(value)
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		}
	}
	switch {
	case chunked:
		for {
			sz, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			n, err := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
			if err != nil {
				return err
			}
			if _, err := io.CopyN(io.Discard, br, n+2); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
		}
	case length >= 0:
		_, err := io.CopyN(io.Discard, br, int64(length))
		return err
	}
	return errors.New("response without a length")
}

// dialIdleH2 opens an h2c (prior knowledge) connection, completes one GET
// on stream 1 and leaves the connection open with its SETTINGS acked.
func dialIdleH2(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := h2Exchange(c, "bench"); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// h2Exchange sends the client preface, SETTINGS and one GET, and reads
// until that stream ends.
func h2Exchange(c net.Conn, authority string) error {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", authority}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	bw := bufio.NewWriter(c)
	bw.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(bw, bufio.NewReader(c))
	fr.WriteSettings()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	if err := bw.Flush(); err != nil {
		return err
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
				if err := bw.Flush(); err != nil {
					return err
				}
			}
		case *http2.GoAwayFrame:
			return fmt.Errorf("GOAWAY %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			return fmt.Errorf("RST_STREAM %v", f.ErrCode)
		case *http2.HeadersFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				return nil
			}
		case *http2.DataFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				return nil
			}
		}
	}
}

func printIdle(out io.Writer, results []idleResult, markdown bool) {
	hdr := []string{"proxy", "protocol", "connections", "RSS before", "RSS idle", "per idle connection", "RSS after close"}
	rows := [][]string{}
	for _, r := range results {
		if r.skipped != "" {
			rows = append(rows, []string{r.proxy, r.proto, "skipped", "", "", "", ""})
			continue
		}
		rows = append(rows, []string{r.proxy, r.proto, strconv.Itoa(r.conns), mib(r.before), mib(r.idle),
			fmt.Sprintf("%.2f KB", r.perConn()/1000), mib(r.after)})
	}
	printRows(out, hdr, rows, markdown)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

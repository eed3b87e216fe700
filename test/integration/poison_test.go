package integration

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// hostileUpstream is a raw-socket HTTP/1.1 upstream. A request for
// /evil/<name> is answered with evil[name] verbatim — a response followed
// by bytes that belong to no request — and, when late[name] is set, those
// bytes are written once the test sends on lateGo (the connection is idle
// in the proxy's pool by then). Every other request gets "ok <path>".
type hostileUpstream struct {
	addr   string
	evil   map[string]string
	late   map[string]string
	lateGo chan struct{}
	// lateDone is signalled once the late bytes are written.
	lateDone chan struct{}
	mu       sync.Mutex
	conns    int
}

func startHostileUpstream(t *testing.T, evil, late map[string]string) *hostileUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := &hostileUpstream{addr: ln.Addr().String(), evil: evil, late: late, lateGo: make(chan struct{}), lateDone: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns++
			h.mu.Unlock()
			go h.serve(c)
		}
	}()
	return h
}

func (h *hostileUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if name, ok := strings.CutPrefix(req.URL.Path, "/evil/"); ok {
			if _, err := io.WriteString(c, h.evil[name]); err != nil {
				return
			}
			if s := h.late[name]; s != "" {
				<-h.lateGo
				io.WriteString(c, s)
				h.lateDone <- struct{}{}
			}
			continue
		}
		body := "ok " + req.URL.Path
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	}
}

// TestUpstreamResponsePoisoning: an upstream that writes bytes after a
// correctly framed response must not get them served to the next,
// unrelated client — over HTTP/1.1 or HTTP/2, on other downstream
// connections. The poisoned upstream connection is closed and counted as
// upstream_cx_protocol_error.
func TestUpstreamResponsePoisoning(t *testing.T) {
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"
	evil := map[string]string{
		"pipelined": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + poison,
		"204":       "HTTP/1.1 204 No Content\r\n\r\n" + poison,
		// A 304 may carry the Content-Length of the representation, never
		// a body: these 39 bytes are a second response.
		"304":       "HTTP/1.1 304 Not Modified\r\nContent-Length: 39\r\n\r\n" + poison[:39],
		"head":      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"late":      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"late-head": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
	}
	late := map[string]string{"late": poison, "late-head": "hello"}
	up := startHostileUpstream(t, evil, late)
	l := startLegate(t, bootstrapYAML(
		[]string{listenerYAML("http", routeAll("hostile"), "")},
		[]string{testutil.StaticClusterYAML("hostile", "", up.addr)}), nil)

	cases := []struct{ name, method, status string }{
		{"pipelined", "GET", "200"},
		{"204", "GET", "204"},
		{"304", "GET", "304"},
		{"head", "HEAD", "200"},
		{"late", "GET", "200"},
		{"late-head", "HEAD", "200"},
	}
	h1 := newClient()
	h2 := h2cClient()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := do(t, h1, mustReq(t, tc.method, l.URL("http", "/evil/"+tc.name), nil))
			if strconv.Itoa(resp.StatusCode) != tc.status {
				t.Fatalf("hostile exchange: status %d, want %s", resp.StatusCode, tc.status)
			}
			if late[tc.name] != "" {
				up.lateGo <- struct{}{}
				<-up.lateDone
			}
			// Innocent clients, each on its own downstream connection.
			for j, c := range []*http.Client{newClient(), h2, h1} {
				path := "/innocent/" + tc.name + "/" + strconv.Itoa(j)
				resp, body := do(t, c, mustReq(t, "GET", l.URL("http", path), nil))
				if resp.StatusCode != 200 || body != "ok "+path {
					t.Fatalf("innocent %s client got %d %q, want 200 %q", resp.Proto, resp.StatusCode, body, "ok "+path)
				}
			}
			if v := l.Counter(t, "cluster.hostile.upstream_cx_protocol_error"); v != i+1 {
				t.Errorf("upstream_cx_protocol_error = %d, want %d", v, i+1)
			}
		})
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	// One connection per poisoned exchange, plus the first.
	if up.conns != len(cases)+1 {
		t.Errorf("upstream saw %d connections, want %d", up.conns, len(cases)+1)
	}
}

// hostileH2Upstream is a frame-level h2c upstream. On its first
// connection the first request, /evil/<mode>, gets a hostile answer;
// every other request on any connection gets "ok <path>":
//   - early: the answer to stream 1 is followed, in the same write, by a
//     complete response on stream 3, which the client has not opened yet;
//   - rst: RST_STREAM on stream 1, then a response on it anyway;
//   - goaway: an answer, then GOAWAY (last stream 1); a later stream on
//     the connection would be answered POISON;
//   - trailing: an answer, then more DATA on the ended stream.
type hostileH2Upstream struct {
	addr  string
	mu    sync.Mutex
	conns int
}

func startHostileH2Upstream(t *testing.T) *hostileH2Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := &hostileH2Upstream{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns++
			first := h.conns == 1
			h.mu.Unlock()
			go serveHostileH2(c, first)
		}
	}()
	return h
}

func serveHostileH2(c net.Conn, hostile bool) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	var out bytes.Buffer
	fr := http2.NewFramer(&out, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	flush := func() bool {
		_, err := c.Write(out.Bytes())
		out.Reset()
		return err == nil
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	respond := func(id uint32, body string, endStream bool) {
		hb.Reset()
		enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
		fr.WriteData(id, endStream, []byte(body))
	}
	fr.WriteSettings()
	goaway := false
	for flush() {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			id, path := f.StreamID, f.PseudoValue("path")
			mode, evil := strings.CutPrefix(path, "/evil/")
			switch {
			case goaway:
				respond(id, "POISON", true)
			case !hostile || !evil:
				respond(id, "ok "+path, true)
			case mode == "early":
				respond(id, "hello", true)
				respond(id+2, "POISON", true)
			case mode == "rst":
				fr.WriteRSTStream(id, http2.ErrCodeInternal)
				respond(id, "POISON", true)
			case mode == "goaway":
				respond(id, "hello", true)
				fr.WriteGoAway(id, http2.ErrCodeNo, nil)
				goaway = true
			case mode == "trailing":
				respond(id, "hello", true)
				fr.WriteData(id, true, []byte("POISON"))
			}
		}
	}
}

// TestUpstreamH2ResponsePoisoning: the HTTP/2 upstream audit. Whatever an
// upstream sends on streams it was not asked about, after resetting a
// stream or after GOAWAY, the next client gets its own response.
func TestUpstreamH2ResponsePoisoning(t *testing.T) {
	for _, mode := range []string{"early", "rst", "goaway", "trailing"} {
		t.Run(mode, func(t *testing.T) {
			up := startHostileH2Upstream(t)
			l := startLegate(t, bootstrapYAML(
				[]string{listenerYAML("http", routeAll("hostile"), "")},
				[]string{testutil.StaticClusterYAML("hostile", "typed_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"+
					"    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"+
					"    explicit_http_config: {http2_protocol_options: {}}", up.addr)}), nil)
			resp, body := do(t, newClient(), mustReq(t, "GET", l.URL("http", "/evil/"+mode), nil))
			if mode == "rst" {
				// A response after its own RST_STREAM is not taken: the
				// reset stands, as Envoy answers it.
				if want := "upstream connect error or disconnect/reset before headers. reset reason: remote reset"; resp.StatusCode != 503 || body != want {
					t.Errorf("reset stream: got %d %q, want 503 %q", resp.StatusCode, body, want)
				}
			} else if resp.StatusCode != 200 || body != "hello" {
				t.Errorf("hostile exchange got %d %q, want 200 \"hello\"", resp.StatusCode, body)
			}
			for j, c := range []*http.Client{newClient(), h2cClient(), newClient()} {
				path := "/innocent/" + strconv.Itoa(j)
				resp, body := do(t, c, mustReq(t, "GET", l.URL("http", path), nil))
				if resp.StatusCode != 200 || body != "ok "+path {
					t.Fatalf("innocent %s client got %d %q, want 200 %q", resp.Proto, resp.StatusCode, body, "ok "+path)
				}
			}
			want := 0
			if mode == "early" || mode == "rst" {
				want = 1
			}
			if v := l.Counter(t, "cluster.hostile.upstream_cx_protocol_error"); v != want {
				t.Errorf("upstream_cx_protocol_error = %d, want %d", v, want)
			}
		})
	}
}

package h2

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
)

// echoHandler answers with the request body.
func echoHandler(_ context.Context, req *message.Request, w message.ResponseWriter) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	w.WriteHeader(200, message.Headers{{Name: "x-path", Value: req.Path}}, int64(len(body)))
	w.Write(body)
}

// TestServeIdleParkResume: with IdleGrace, Serve returns ErrIdle once the
// connection has been idle, holding no read, write or header buffer; a
// second Serve on the same ServerConn carries on (HPACK state, windows and
// settings intact) for the same client.
func TestServeIdleParkResume(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type served struct {
		sc  *ServerConn
		err error
	}
	results := make(chan served, 4)
	resume := make(chan *ServerConn)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sc := NewServerConn(c, ServerConfig{IdleGrace: 50 * time.Millisecond}, echoHandler)
		for {
			err := sc.Serve(context.Background())
			results <- served{sc, err}
			if err != ErrIdle {
				return
			}
			if <-resume == nil {
				return
			}
		}
	}()
	cc := dialClient(t, ln.Addr().String(), ClientConfig{})
	get := func(path string) {
		t.Helper()
		resp, err := cc.RoundTrip(ctxT(t), &message.Request{Method: "POST", Scheme: "http", Authority: "h", Path: path,
			Body: &bytesBody{r: bytes.NewReader([]byte("hello"))}, ContentLength: 5})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "hello" || resp.Header.Value("x-path") != path {
			t.Fatalf("%s: %q %v %v", path, b, err, resp.Header)
		}
	}
	get("/one")
	var r served
	select {
	case r = <-results:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return ErrIdle")
	}
	if r.err != ErrIdle {
		t.Fatalf("Serve returned %v, want ErrIdle", r.err)
	}
	sc := r.sc
	sc.mu.Lock()
	if sc.rd.buf != nil || sc.fr != nil || sc.out != nil || sc.hbuf.b != nil || sc.writing || len(sc.streams) != 0 {
		t.Errorf("idle connection holds buffers: read %v framer %v out %d hbuf %d writing %v streams %d",
			sc.rd.buf != nil, sc.fr != nil, len(sc.out), len(sc.hbuf.b), sc.writing, len(sc.streams))
	}
	sc.mu.Unlock()
	// The client sends its next request while the connection is parked.
	done := make(chan struct{})
	go func() { defer close(done); get("/two") }()
	resume <- sc
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("request after resume did not complete")
	}
	if r := <-results; r.err != ErrIdle {
		t.Fatalf("second Serve returned %v", r.err)
	}
	close(resume)
}

// TestHandlerCtxCancelledOnReset: the client's RST_STREAM cancels the
// handler's context.
func TestHandlerCtxCancelledOnReset(t *testing.T) {
	cancelled := make(chan struct{})
	addr := serveLegateCtx(t, ServerConfig{}, func(ctx context.Context, req *message.Request, w message.ResponseWriter) {
		select {
		case <-ctx.Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	// Let the handler start before the reset.
	time.Sleep(50 * time.Millisecond)
	fr.WriteRSTStream(1, http2.ErrCodeCancel)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled by RST_STREAM")
	}
}

func serveLegateCtx(t *testing.T, cfg ServerConfig, h Handler) string {
	t.Helper()
	ctx := ctxT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go Serve(ctx, c, cfg, h)
		}
	}()
	return ln.Addr().String()
}

// FuzzServerFrames feeds the server a client preface, SETTINGS and then
// arbitrary bytes (sequences of frames: the seed corpus in
// testdata/fuzz/FuzzServerFrames holds well-formed and hostile ones). The
// server must neither panic nor hang, and must end once the client has
// gone.
func FuzzServerFrames(f *testing.F) {
	for _, seed := range frameSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		st := NewServerStats(stats.NewStore().Scope("http2"))
		go func() {
			defer close(done)
			Serve(context.Background(), server, ServerConfig{
				IdleTimeout: time.Second, StreamErrorOnInvalidMessaging: len(data)%2 == 0,
				PrematureResetTotalStreamCount: 4, Stats: st,
			}, echoHandler)
		}()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(client, http2.ClientPreface)
		http2.NewFramer(client, nil).WriteSettings()
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after the client closed")
		}
		// Every stream was accounted for and every queued byte released.
		if n := st.StreamsActive.Value(); n != 0 {
			t.Fatalf("streams_active = %d after Serve returned", n)
		}
		if n := st.PendingSendBytes.Value(); n != 0 {
			t.Fatalf("pending_send_bytes = %d after Serve returned", n)
		}
	})
}

// frameSeeds are frame sequences covering each frame type, well-formed
// and not.
func frameSeeds() [][]byte {
	var out [][]byte
	build := func(fn func(fr *http2.Framer, hdr func(...string) []byte)) {
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		fr.AllowIllegalWrites = true
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		hdr := func(kv ...string) []byte {
			hb.Reset()
			base := []string{":method", "POST", ":scheme", "http", ":authority", "h", ":path", "/p"}
			kv = append(base, kv...)
			for i := 0; i+1 < len(kv); i += 2 {
				enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return bytes.Clone(hb.Bytes())
		}
		fn(fr, hdr)
		out = append(out, b.Bytes())
	}
	build(func(fr *http2.Framer, hdr func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr("content-length", "5"), EndHeaders: true})
		fr.WriteData(1, false, []byte("hel"))
		fr.WriteData(1, true, []byte("lo"))
	})
	build(func(fr *http2.Framer, hdr func(...string) []byte) {
		for id := uint32(1); id < 40; id += 2 {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hdr(), EndStream: true, EndHeaders: true})
			fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	})
	build(func(fr *http2.Framer, hdr func(...string) []byte) {
		block := hdr("x-a", "1", "x-b", "2")
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:3]})
		fr.WriteContinuation(1, false, block[3:6])
		fr.WriteContinuation(1, true, block[6:])
		fr.WriteData(1, false, nil)
		fr.WriteData(1, false, nil)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: nil, EndStream: true, EndHeaders: true})
	})
	build(func(fr *http2.Framer, hdr func(...string) []byte) {
		var d [8]byte
		for range 20 {
			fr.WritePing(false, d)
			fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		}
		fr.WriteWindowUpdate(0, 1<<30)
		fr.WriteWindowUpdate(0, 1<<30)
		fr.WritePriority(3, http2.PriorityParam{StreamDep: 3})
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	build(func(fr *http2.Framer, hdr func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr("te", "gzip", "connection", "x"), EndStream: true, EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hdr("trailer", "x-t"), EndHeaders: true})
		fr.WriteData(3, false, []byte("body"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: []byte{0x40, 3, 'x', '-', 't', 1, 'v'}, EndStream: true, EndHeaders: true})
		fr.WriteRawFrame(0x20, 0, 0, []byte("unknown"))
		fr.WriteData(5, true, []byte("idle stream"))
	})
	return out
}

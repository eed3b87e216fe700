package h2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/legate-proxy/legate/internal/http/message"
)

// Frame scripts for FuzzClientFrames: the upstream's side of one
// connection as a sequence of frames, each written as
//
//	type, flags, stream, length, payload[length]
//
// stream picks the stream id (0, 1 — the request's —, 3, 2, 2^31-1, or
// the byte itself) and, with its top bit set on HEADERS, CONTINUATION or
// PUSH_PROMISE, makes the payload a NUL-separated name/value list that is
// HPACK-encoded (one encoder per connection, so the dynamic table carries
// over): the fuzzer then works on header semantics instead of having to
// find valid HPACK. Such frames keep only END_STREAM and END_HEADERS.

const fieldsMode = 0x80

func scriptStream(sel byte) uint32 {
	switch sel & 0x7f {
	case 0:
		return 0
	case 1:
		return 1
	case 2:
		return 3
	case 3:
		return 2
	case 4:
		return 1<<31 - 1
	}
	return uint32(sel & 0x7f)
}

// buildFrames turns a script into wire bytes.
func buildFrames(script []byte) []byte {
	var out, block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for len(script) >= 4 {
		typ, flags, sel, n := http2.FrameType(script[0]), http2.Flags(script[1]), script[2], int(script[3])
		script = script[4:]
		n = min(n, len(script))
		payload := script[:n]
		script = script[n:]
		if sel&fieldsMode != 0 && (typ == http2.FrameHeaders || typ == http2.FrameContinuation || typ == http2.FramePushPromise) {
			block.Reset()
			if typ == http2.FramePushPromise {
				block.Write([]byte{0, 0, 0, 2}) // promised stream 2
			}
			parts := strings.Split(string(payload), "\x00")
			for i := 0; i+1 < len(parts); i += 2 {
				enc.WriteField(hpack.HeaderField{Name: parts[i], Value: parts[i+1]})
			}
			payload = block.Bytes()
			flags &= http2.FlagHeadersEndStream | http2.FlagHeadersEndHeaders
		}
		var hdr [9]byte
		hdr[0], hdr[1], hdr[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
		hdr[3], hdr[4] = byte(typ), byte(flags)
		binary.BigEndian.PutUint32(hdr[5:], scriptStream(sel))
		out.Write(hdr[:])
		out.Write(payload)
	}
	return out.Bytes()
}

// frame appends one script entry.
func frame(typ http2.FrameType, flags http2.Flags, sel byte, payload string) string {
	return string([]byte{byte(typ), byte(flags), sel, byte(len(payload))}) + payload
}

func fields(kv ...string) string { return strings.Join(kv, "\x00") + "\x00" }

var (
	scriptSettings = frame(http2.FrameSettings, 0, 0, "")
	scriptOK       = frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, fieldsMode|1, fields(":status", "200", "content-length", "5"))
	scriptHello    = frame(http2.FrameData, http2.FlagDataEndStream, 1, "hello")
)

// clientFrameSeeds are scripts for well-formed and hostile upstreams.
var clientFrameSeeds = []string{
	scriptSettings + scriptOK + scriptHello,
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "204")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, fieldsMode|1, fields(":status", "100")) + scriptOK + scriptHello,
	// Trailers.
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, fieldsMode|1, fields(":status", "200")) + frame(http2.FrameData, 0, 1, "ab") +
		frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields("grpc-status", "0")),
	// Malformed :status values.
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "+200")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "99")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "1000")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "-1")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "600")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "101")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "200", ":status", "404")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields("x", "y")),
	// Content-length lies.
	scriptSettings + scriptOK + frame(http2.FrameData, http2.FlagDataEndStream, 1, "hi"),
	scriptSettings + scriptOK + frame(http2.FrameData, http2.FlagDataEndStream, 1, "hello world"),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, fieldsMode|1, fields(":status", "200", "content-length", "1", "content-length", "2")) + scriptHello,
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, fieldsMode|1, fields(":status", "304", "content-length", "5")) + scriptHello,
	// Connection-specific and invalid fields.
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "200", "connection", "close", "transfer-encoding", "chunked", "upgrade", "h2c")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "200", "X-Upper", "1")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "200", "x", "a\r\nb")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "200", "x", "a\x00b")),
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "200", ":path", "/")),
	// Split header blocks.
	scriptSettings + frame(http2.FrameHeaders, 0, fieldsMode|1, fields(":status", "200")) + frame(http2.FrameContinuation, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields("x", "y")),
	scriptSettings + frame(http2.FrameHeaders, 0, fieldsMode|1, fields(":status", "200")) + frame(http2.FrameContinuation, 0, fieldsMode|3, fields("x", "y")),
	scriptSettings + frame(http2.FrameHeaders, 0, fieldsMode|1, fields(":status", "200")) + scriptHello,
	// Frames on the wrong stream, control frames, resets.
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, fieldsMode|2, fields(":status", "200")),
	scriptSettings + frame(http2.FrameData, 0, 0, "x"),
	scriptSettings + frame(http2.FrameRSTStream, 0, 1, "\x00\x00\x00\x07"),
	scriptSettings + frame(http2.FrameGoAway, 0, 0, "\x00\x00\x00\x00\x00\x00\x00\x00"),
	scriptSettings + frame(http2.FrameGoAway, 0, 0, "\x00\x00\x00\x01\x00\x00\x00\x00") + scriptOK + scriptHello,
	scriptSettings + frame(http2.FramePing, 0, 0, "12345678") + scriptOK + scriptHello,
	scriptSettings + frame(http2.FrameWindowUpdate, 0, 1, "\x7f\xff\xff\xff") + frame(http2.FrameWindowUpdate, 0, 1, "\x7f\xff\xff\xff") + scriptOK + scriptHello,
	scriptSettings + frame(http2.FrameSettings, 0, 0, "\x00\x04\x80\x00\x00\x00"),
	scriptSettings + frame(http2.FrameSettings, 0, 0, "\x00\x05\x00\x00\x00\x01"),
	scriptSettings + frame(http2.FramePushPromise, http2.FlagHeadersEndHeaders, fieldsMode|1, fields(":method", "GET", ":path", "/p", ":scheme", "http", ":authority", "h")),
	scriptSettings + frame(http2.FramePriority, 0, 1, "\x00\x00\x00\x01\x10") + scriptOK + scriptHello,
	scriptSettings + frame(0x42, 0xff, 1, "unknown extension frame") + scriptOK + scriptHello,
	scriptSettings + frame(http2.FrameData, http2.FlagDataPadded, 1, "\xff"),
	frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, fieldsMode|1, fields(":status", "200")),
	// A raw, invalid HPACK block.
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, "\xff\xff\xff\xff\xff"),
	// A dynamic table size update above the limit.
	scriptSettings + frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, "\x3f\xe1\xff\x03\x88"),
}

// fakeUpstream serves one connection on nc: it reads the client's
// preface and frames until the request's HEADERS end the stream, then
// writes script and closes.
func fakeUpstream(nc net.Conn, wire []byte) {
	defer nc.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(nc, preface); err != nil {
		return
	}
	fr := http2.NewFramer(io.Discard, nc)
	started := make(chan struct{})
	go func() {
		once := false
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				if !once {
					close(started)
				}
				return
			}
			if hf, ok := f.(*http2.HeadersFrame); ok && hf.StreamEnded() && !once {
				once = true
				close(started)
			}
		}
	}()
	<-started
	nc.Write(wire)
}

// FuzzClientFrames runs the upstream HTTP/2 client against an upstream
// that answers a GET with a fuzzed sequence of frames. Whatever arrives,
// RoundTrip and the body read end promptly with a response or an *Error;
// a response has a final 3-digit status (200-599), only valid lower-case
// regular fields (no pseudo-header, none connection-specific), trailers
// likewise, no body on 204 and 304, and a body whose length is its
// content-length when it ends cleanly; and the stream is no longer
// counted active once its body is done.
func FuzzClientFrames(f *testing.F) {
	for _, s := range clientFrameSeeds {
		f.Add([]byte(s))
	}
	// x/net logs every odd frame it ignores; that is noise here.
	log.SetOutput(io.Discard)
	f.Cleanup(func() { log.SetOutput(os.Stderr) })
	f.Fuzz(func(t *testing.T, script []byte) {
		wire := buildFrames(script)
		cli, srv := net.Pipe()
		go fakeUpstream(srv, wire)
		cc, err := NewClientConn(cli, ClientConfig{MaxHeaderBytes: 16 << 10})
		if err != nil {
			return
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cc.RoundTrip(ctx, &message.Request{Method: "GET", Scheme: "http", Authority: "h", Path: "/"})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("RoundTrip error %T %v is not an *Error", err, err)
			}
			if cc.ActiveStreams() != 0 {
				t.Fatalf("failed stream still active")
			}
			return
		}
		if resp.Status < 200 || resp.Status > 599 {
			t.Fatalf("status %d accepted", resp.Status)
		}
		checkFields(t, "header", resp.Header)
		if resp.Body == nil {
			if cc.ActiveStreams() != 0 {
				t.Fatalf("bodyless response still active")
			}
			return
		}
		body, berr := io.ReadAll(resp.Body)
		if ctx.Err() != nil {
			t.Fatalf("body read hangs")
		}
		if berr == nil {
			if (resp.Status == 204 || resp.Status == 304) && len(body) > 0 {
				t.Fatalf("%d with a %d-byte body", resp.Status, len(body))
			}
			if resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
				t.Fatalf("content-length %d, body %d bytes", resp.ContentLength, len(body))
			}
			checkFields(t, "trailer", resp.Body.Trailers())
		} else {
			var e *Error
			if !errors.As(berr, &e) {
				t.Fatalf("body error %T %v is not an *Error", berr, berr)
			}
		}
		if cc.ActiveStreams() != 0 {
			t.Fatalf("stream still active after its body ended")
		}
	})
}

func checkFields(t *testing.T, what string, h message.Headers) {
	t.Helper()
	for _, f := range h {
		if f.Name == "" || strings.ToLower(f.Name) != f.Name || f.Name[0] == ':' || connectionSpecific(f.Name) {
			t.Fatalf("%s %q passed on", what, f.Name)
		}
		if strings.ContainsAny(f.Value, "\r\n\x00") {
			t.Fatalf("%s %s value %q passed on", what, f.Name, f.Value)
		}
	}
}

package connpool

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/legate-proxy/legate/internal/testutil/loopback"
)

// hostileH2 serves h2c; on its first connection the first request gets
// the answer act writes (fr buffers until the read loop flushes it), later
// ones "ok <path>".
func hostileH2(t *testing.T, act func(fr *http2.Framer, respond func(id uint32, body string), id uint32)) (string, *atomic.Int64) {
	var conns atomic.Int64
	addr := loopback.Serve(t, func(c net.Conn) {
		hostile := conns.Add(1) == 1
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil {
			return
		}
		var out, hb bytes.Buffer
		fr := http2.NewFramer(&out, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		enc := hpack.NewEncoder(&hb)
		respond := func(id uint32, body string) {
			hb.Reset()
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
			fr.WriteData(id, true, []byte(body))
		}
		fr.WriteSettings()
		first := true
		for {
			if _, err := c.Write(out.Bytes()); err != nil {
				return
			}
			out.Reset()
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.MetaHeadersFrame:
				path := f.PseudoValue("path")
				if hostile && first && strings.HasPrefix(path, "/evil") {
					first = false
					act(fr, respond, f.StreamID)
					continue
				}
				respond(f.StreamID, "ok "+path)
			}
		}
	})
	return addr, &conns
}

func TestH2HostileUpstream(t *testing.T) {
	cases := []struct {
		name       string
		act        func(fr *http2.Framer, respond func(uint32, string), id uint32)
		wantStatus int // 0: the hostile exchange fails
	}{
		{"early response on an unopened stream", func(fr *http2.Framer, respond func(uint32, string), id uint32) {
			respond(id, "hello")
			respond(id+2, "POISON")
		}, 200},
		{"reset then a response", func(fr *http2.Framer, respond func(uint32, string), id uint32) {
			fr.WriteRSTStream(id, http2.ErrCodeInternal)
			respond(id, "POISON")
		}, 0},
		{"goaway", func(fr *http2.Framer, respond func(uint32, string), id uint32) {
			respond(id, "hello")
			fr.WriteGoAway(id, http2.ErrCodeNo, nil)
		}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := hostileH2(t, tc.act)
			p := newTestPool(t, addr, h2Settings())
			resp, err := p.RoundTrip(testCtx(t), get("/evil"))
			switch {
			case tc.wantStatus == 0 && err == nil:
				t.Fatalf("hostile exchange: got %d %q, want an error", resp.Status, readAll(t, resp))
			case tc.wantStatus != 0 && err != nil:
				t.Fatalf("hostile exchange: %v", err)
			case err == nil:
				if got := readAll(t, resp); resp.Status != tc.wantStatus || got != "hello" {
					t.Fatalf("hostile exchange: %d %q", resp.Status, got)
				}
			}
			for _, path := range []string{"/a", "/b"} {
				resp, err := p.RoundTrip(testCtx(t), get(path))
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				if got := readAll(t, resp); got != "ok "+path {
					t.Fatalf("%s got %q", path, got)
				}
			}
		})
	}
}

// The frame scanner finds every frame header however the stream is cut.
func TestFrameScanAcrossBoundaries(t *testing.T) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	fr.WriteSettings()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x88}, EndHeaders: true})
	fr.WriteData(1, false, bytes.Repeat([]byte("x"), 300))
	fr.WriteRSTStream(3, http2.ErrCodeCancel)
	fr.WriteData(5, true, nil)
	want := "4/0 1/1 0/1 3/3 0/5 "
	wire := b.Bytes()
	for size := 1; size <= len(wire); size++ {
		var s frameScan
		var got strings.Builder
		for i := 0; i < len(wire); i += size {
			s.next(wire[i:min(i+size, len(wire))], func(typ byte, stream uint32, _ int) bool {
				got.WriteString(strconv.Itoa(int(typ)) + "/" + strconv.Itoa(int(stream)) + " ")
				return true
			})
		}
		if got.String() != want {
			t.Fatalf("chunks of %d: frames %q, want %q", size, got.String(), want)
		}
	}
}

package connpool

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// cannedServer answers every request head with the same small response.
func cannedServer(b *testing.B) string {
	const resp = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
	return loopback.Serve(b, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) == 2 {
					break
				}
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	})
}

func BenchmarkRoundTripH1(b *testing.B) {
	p := newTestPool(b, cannedServer(b), cluster.Settings{})
	req := get("/bench")
	ctx := testCtx(b)
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := p.RoundTrip(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := resp.Body.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkRoundTripH1Parallel(b *testing.B) {
	p := newTestPool(b, cannedServer(b), cluster.Settings{})
	ctx := testCtx(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := get("/bench")
		buf := make([]byte, 64)
		for pb.Next() {
			resp, err := p.RoundTrip(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			for {
				_, err := resp.Body.Read(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

package tcp_proxy

import (
	"io"
	"testing"
)

// BenchmarkStream pushes 1 MiB per op through one long-lived proxied
// connection to an echo upstream and reads it back. allocs/op shows the
// copy loop allocates nothing per byte (or per read).
func BenchmarkStream(b *testing.B) {
	up := startServer(b, echo)
	h := newHarness(b, simple("svc"), clusterPB("svc", up))
	c := h.dial()
	const chunk = 1 << 20
	out := make([]byte, chunk)
	in := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		errc := make(chan error, 1)
		go func() { _, err := c.Write(out); errc <- err }()
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}

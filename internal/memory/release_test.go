package memory

import (
	"runtime/metrics"
	"testing"
)

var sink [][]byte

// Release gives freed heap back at once: after 64 MiB of garbage, the
// free-but-retained heap is small again.
func TestReleaseReturnsFreedHeap(t *testing.T) {
	for i := 0; i < 64; i++ {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	Release()
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	if free := s[0].Value.Uint64(); free >= minFree {
		t.Fatalf("%d bytes of free heap retained after Release, want < %d", free, minFree)
	}
}

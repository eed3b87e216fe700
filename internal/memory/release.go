// Package memory returns the heap a quiet process no longer uses to the
// operating system.
//
// The Go runtime's scavenger returns free memory only slowly, and only
// down to what the next GC cycle may need: after a burst (thousands of
// connections opened at once, each serving a request before it went idle
// and was parked), the process keeps the burst's peak resident for
// minutes. Envoy has the same problem with tcmalloc and answers it with
// the overload manager's shrink_heap action and the memory allocator
// manager's periodic release. Legate runs Release on shrink_heap, and
// Releaser between bursts: when the process has been quiet (little
// allocated since the last look) and holds much free heap, it gives it
// back at once.
package memory

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

const (
	// releaseInterval is how often the releaser looks.
	releaseInterval = 2 * time.Second
	// minFree is the free, unreleased heap below which nothing is done.
	minFree = 8 << 20
	// quietAlloc is the most a "quiet" process allocates per interval.
	quietAlloc = 4 << 20
)

// Release returns all free heap to the OS now: the shrink_heap action.
// Two collections, because what sync.Pools held (connection buffers
// returned when connections went idle) is freed only by the second.
func Release() {
	runtime.GC()
	debug.FreeOSMemory()
}

// Releaser releases free heap whenever the process is quiet and holds at
// least minFree of it, until ctx ends.
func Releaser(ctx context.Context) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}
	t := time.NewTicker(releaseInterval)
	defer t.Stop()
	var lastAllocs uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		free, allocs := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		quiet := allocs-lastAllocs < quietAlloc
		lastAllocs = allocs
		if quiet && free >= minFree {
			Release()
			metrics.Read(samples)
			lastAllocs = samples[1].Value.Uint64()
		}
	}
}

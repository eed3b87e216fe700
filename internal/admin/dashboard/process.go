package dashboard

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"syscall"
	"time"
)

// procSample is one reading of the process's own figures. rss and fds are
// -1/0 where /proc is unavailable.
type procSample struct {
	t          time.Time
	cpu        float64 // user+system CPU seconds since start
	cpuOK      bool
	rss        int64
	heap       int64 // bytes in live and not-yet-swept heap objects
	goroutines int64
	fds        int64
}

// procReader reads the process's CPU, memory and descriptors. CPU comes
// from getrusage (exact, no parsing); resident memory and open descriptors
// from /proc, as the kernel keeps them nowhere else.
type procReader struct {
	samples  []metrics.Sample
	pageSize int64
}

func newProcReader() procReader {
	return procReader{
		samples:  []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}},
		pageSize: int64(os.Getpagesize()),
	}
}

func (p *procReader) read() procSample {
	s := procSample{goroutines: int64(runtime.NumGoroutine()), rss: -1, fds: -1}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.cpu = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		s.cpuOK = true
	}
	metrics.Read(p.samples)
	if v := p.samples[0].Value; v.Kind() == metrics.KindUint64 {
		s.heap = int64(v.Uint64())
	}
	// statm: size resident shared text lib data dt, in pages.
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := bytes.Fields(b); len(f) > 1 {
			if n, err := strconv.ParseInt(string(f[1]), 10, 64); err == nil {
				s.rss = n * p.pageSize
			}
		}
	}
	if d, err := os.Open("/proc/self/fd"); err == nil {
		names, err := d.Readdirnames(-1)
		d.Close()
		if err == nil {
			s.fds = int64(len(names)) - 1 // the descriptor reading the directory
		}
	}
	return s
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

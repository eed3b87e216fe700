package dashboard

import (
	"time"

	"github.com/legate-proxy/legate/internal/stats"
)

// procSample is one reading of the process's own figures; rss and fds are
// -1 where the OS does not report them.
type procSample struct {
	t          time.Time
	cpu        float64 // user+system CPU seconds since start
	cpuOK      bool
	rss        int64
	heap       int64 // bytes in live and not-yet-swept heap objects
	goroutines int64
	fds        int64
}

// readProc reads the figures the stats package exports as process_* and
// go_* metrics, so the dashboard and /stats/prometheus agree.
func readProc() procSample {
	p := stats.ReadProcess()
	s := procSample{heap: int64(p.HeapBytes), goroutines: int64(p.Goroutines), rss: -1, fds: -1}
	if p.Proc {
		s.cpu, s.cpuOK = p.CPUSeconds, true
		s.rss, s.fds = int64(p.ResidentBytes), int64(p.OpenFDs)
	}
	return s
}

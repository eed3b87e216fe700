package admin

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
)

// profiler is /cpuprofiler and /heapprofiler: Envoy's endpoints, writing
// Go pprof profiles (go tool pprof reads them) to admin.profile_path.
type profiler struct {
	mu   sync.Mutex
	cpu  *os.File // open while the CPU profiler runs
	heap bool     // heap profiling asked for; the profile is written on stop
}

func (s *server) cpuProfiler(w http.ResponseWriter, r *http.Request) {
	enable, ok := enableParam(w, r)
	if !ok {
		return
	}
	if s.deps.ProfilePath == "" {
		text(w, http.StatusNotFound, "no admin.profile_path\n")
		return
	}
	p := &s.prof
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case enable && p.cpu == nil:
		f, err := os.Create(s.deps.ProfilePath)
		if err != nil {
			text(w, http.StatusInternalServerError, fmt.Sprintf("failure to start the profiler: %v\n", err))
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			text(w, http.StatusInternalServerError, fmt.Sprintf("failure to start the profiler: %v\n", err))
			return
		}
		p.cpu = f
	case !enable && p.cpu != nil:
		pprof.StopCPUProfile()
		err := p.cpu.Close()
		p.cpu = nil
		if err != nil {
			text(w, http.StatusInternalServerError, fmt.Sprintf("writing the profile: %v\n", err))
			return
		}
	}
	text(w, http.StatusOK, "OK\n")
}

func (s *server) heapProfiler(w http.ResponseWriter, r *http.Request) {
	enable, ok := enableParam(w, r)
	if !ok {
		return
	}
	if s.deps.ProfilePath == "" {
		text(w, http.StatusNotFound, "no admin.profile_path\n")
		return
	}
	p := &s.prof
	p.mu.Lock()
	defer p.mu.Unlock()
	if enable {
		p.heap = true
		text(w, http.StatusOK, "OK\n")
		return
	}
	if !p.heap {
		text(w, http.StatusBadRequest, "Heap profiler is not running\n")
		return
	}
	p.heap = false
	f, err := os.Create(s.deps.ProfilePath)
	if err == nil {
		runtime.GC() // the profile shows live objects as of the last GC
		err = pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		text(w, http.StatusInternalServerError, fmt.Sprintf("writing the profile: %v\n", err))
		return
	}
	text(w, http.StatusOK, "OK\n")
}

// enableParam reads ?enable=y|n, answering 400 otherwise.
func enableParam(w http.ResponseWriter, r *http.Request) (bool, bool) {
	switch r.URL.Query().Get("enable") {
	case "y":
		return true, true
	case "n":
		return false, true
	}
	text(w, http.StatusBadRequest, "?enable=<y|n>\n")
	return false, false
}

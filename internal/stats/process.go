package stats

import (
	"bufio"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"time"
)

// ProcessSnapshot is the proxy's own resource use, as Prometheus' standard
// process_* and go_* metrics report it. Reading it costs a few /proc reads
// and no stop-the-world, so scrapes and the dashboard may call it freely.
type ProcessSnapshot struct {
	// Proc is false where /proc and getrusage are unavailable; the
	// process_* fields are then zero and not exported.
	Proc          bool
	CPUSeconds    float64 // user + system
	ResidentBytes uint64
	VirtualBytes  uint64
	OpenFDs       uint64
	MaxFDs        uint64
	StartTime     time.Time

	Goroutines   int
	Threads      int
	HeapBytes    uint64 // bytes in live and not yet swept heap objects
	HeapSysBytes uint64 // heap memory obtained from the OS
	SysBytes     uint64 // all memory obtained from the OS
	GoVersion    string
}

var processSamples = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/total:bytes",
}

// ReadProcess returns the current figures.
func ReadProcess() ProcessSnapshot {
	p := ProcessSnapshot{
		Goroutines: runtime.NumGoroutine(),
		Threads:    pprof.Lookup("threadcreate").Count(),
		GoVersion:  runtime.Version(),
	}
	samples := make([]metrics.Sample, len(processSamples))
	for i, n := range processSamples {
		samples[i].Name = n
	}
	metrics.Read(samples)
	var v [5]uint64
	for i, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p.HeapBytes = v[0]
	p.HeapSysBytes = v[0] + v[1] + v[2] + v[3]
	p.SysBytes = v[4]
	readOS(&p)
	return p
}

// writeProcessMetrics appends the process families to /stats/prometheus.
// filter, when set, is matched against the Prometheus names.
func writeProcessMetrics(bw *bufio.Writer, keep func(string) bool) {
	p := ReadProcess()
	fam := func(name, typ, help, value string) {
		if !keep(name) {
			return
		}
		writeHeader(bw, name, typ, help)
		writeSeries(bw, name, "", value)
	}
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	if p.Proc {
		fam("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", formatFloat(p.CPUSeconds))
		fam("process_max_fds", "gauge", "Maximum number of open file descriptors.", u(p.MaxFDs))
		fam("process_open_fds", "gauge", "Number of open file descriptors.", u(p.OpenFDs))
		fam("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", u(p.ResidentBytes))
		if !p.StartTime.IsZero() {
			fam("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
				formatFloat(float64(p.StartTime.UnixMilli())/1000))
		}
		fam("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", u(p.VirtualBytes))
	}
	fam("go_goroutines", "gauge", "Number of goroutines that currently exist.", strconv.Itoa(p.Goroutines))
	if keep("go_info") {
		writeHeader(bw, "go_info", "gauge", "Information about the Go environment.")
		writeSeries(bw, "go_info", `version="`+escapeLabelValue(p.GoVersion)+`"`, "1")
	}
	fam("go_memstats_heap_alloc_bytes", "gauge", "Number of heap bytes allocated and still in use.", u(p.HeapBytes))
	fam("go_memstats_heap_sys_bytes", "gauge", "Number of heap bytes obtained from system.", u(p.HeapSysBytes))
	fam("go_memstats_sys_bytes", "gauge", "Number of bytes obtained from system.", u(p.SysBytes))
	fam("go_threads", "gauge", "Number of OS threads created.", strconv.Itoa(p.Threads))
}

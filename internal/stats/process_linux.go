package stats

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of /proc's clock-tick fields; Linux fixes it at 100
// for user space whatever the kernel's internal HZ.
const userHZ = 100

func readOS(p *ProcessSnapshot) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return
	}
	p.Proc = true
	p.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)

	// statm: size resident shared text lib data dt, in pages.
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 2 {
			page := uint64(os.Getpagesize())
			vsz, _ := strconv.ParseUint(f[0], 10, 64)
			rss, _ := strconv.ParseUint(f[1], 10, 64)
			p.VirtualBytes, p.ResidentBytes = vsz*page, rss*page
		}
	}
	if d, err := os.Open("/proc/self/fd"); err == nil {
		names, _ := d.Readdirnames(-1)
		d.Close()
		p.OpenFDs = uint64(len(names))
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		p.MaxFDs = rl.Cur
	}
	p.StartTime = processStart()
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// processStart is boot time (/proc/stat btime) plus the process' start
// in clock ticks after boot (/proc/self/stat field 22).
func processStart() time.Time {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return time.Time{}
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return time.Time{}
	}
	f := strings.Fields(string(stat[i+1:]))
	const startField = 22 - 3 // fields after ')' begin with field 3
	if len(f) <= startField {
		return time.Time{}
	}
	ticks, err := strconv.ParseUint(f[startField], 10, 64)
	if err != nil {
		return time.Time{}
	}
	all, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for line := range strings.Lines(string(all)) {
		if rest, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return time.Time{}
			}
			ms := boot*1000 + int64(ticks)*1000/userHZ
			return time.UnixMilli(ms)
		}
	}
	return time.Time{}
}

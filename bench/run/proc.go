package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat.
var clockTicks = func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100 // USER_HZ on every mainstream Linux architecture
}()

// procStat is the part of /proc/<pid>/stat the bench uses.
type procStat struct {
	PPID int
	// CPU is utime+stime+cutime+cstime in clock ticks: the process's own
	// threads plus children it has reaped.
	CPU int64
}

// parseStat parses a /proc/<pid>/stat line. The command name is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(line string) (procStat, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed stat %q", line)
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("short stat %q", line)
	}
	var st procStat
	var err error
	if st.PPID, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("stat ppid: %w", err)
	}
	for _, s := range f[11:15] { // utime, stime, cutime, cstime
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("stat cpu: %w", err)
		}
		st.CPU += n
	}
	return st, nil
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// processTree is root and all its descendants (nginx's master and worker,
// for example).
func processTree(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.PPID] = append(children[st.PPID], pid)
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// treeCPU is the CPU time used so far by root and its descendants.
func treeCPU(root int) (time.Duration, error) {
	var ticks int64
	for i, pid := range processTree(root) {
		st, err := readStat(pid)
		if err != nil {
			if i == 0 {
				return 0, err
			}
			continue
		}
		ticks += st.CPU
	}
	return time.Duration(ticks) * time.Second / time.Duration(clockTicks), nil
}

// treePeakRSS sums VmHWM (peak resident set) over root and its descendants,
// in bytes. Pages shared between processes count once per process.
func treePeakRSS(root int) (int64, error) { return treeStatus(root, "VmHWM") }

// treeRSS sums VmRSS (the resident set now) over root and its descendants.
func treeRSS(root int) (int64, error) { return treeStatus(root, "VmRSS") }

func treeStatus(root int, key string) (int64, error) {
	var total int64
	for i, pid := range processTree(root) {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err == nil {
			var v int64
			if v, err = parseStatusBytes(b, key); err == nil {
				total += v
				continue
			}
		}
		if i == 0 {
			return 0, err
		}
	}
	return total, nil
}

// parseStatusBytes reads a "Key:  N kB" line of /proc/<pid>/status, in bytes.
func parseStatusBytes(status []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed %s line %q", key, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", key, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s in status", key)
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		file string
		want wrkResult
	}{
		{"wrk-ok.txt", wrkResult{
			Requests: 774321, Duration: 10 * time.Second, RPS: 77431.52,
			P50: 385 * time.Microsecond, P99: 1020 * time.Microsecond, SocketErrors: 3,
		}},
		{"wrk-non2xx.txt", wrkResult{
			Requests: 2019, Duration: 1100 * time.Millisecond, RPS: 1835.89,
			P50: 2 * time.Millisecond, P99: 6010 * time.Microsecond, Non2xx: 2019,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseWrk(string(b))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseWrkIncomplete(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "wrk-ok.txt"))
	if err != nil {
		t.Fatal(err)
	}
	full := string(b)
	for _, drop := range []string{"requests in", "Requests/sec", "50%", "99%"} {
		var kept []string
		for _, l := range strings.Split(full, "\n") {
			if !strings.Contains(l, drop) {
				kept = append(kept, l)
			}
		}
		if _, err := parseWrk(strings.Join(kept, "\n")); err == nil {
			t.Errorf("output without %q accepted", drop)
		}
	}
}

func TestParseStat(t *testing.T) {
	// The command name may contain spaces and parentheses.
	line := "4242 (my (odd) proc) S 17 4242 4242 0 -1 4194560 1000 0 0 0 250 30 7 5 20 0 3 0 100 1000000 300 18446744073709551615\n"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != 17 || st.CPU != 250+30+7+5 {
		t.Errorf("got %+v", st)
	}
	for _, bad := range []string{"", "4242 no parens S 1", "4242 (x) S 1 2 3"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	got, err := parseStatusBytes([]byte("Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t    1600 kB\nVmRSS:\t 1500 kB\n"), "VmHWM")
	if err != nil || got != 1600*1024 {
		t.Errorf("got %d, %v", got, err)
	}
	if _, err := parseStatusBytes([]byte("Name:\tx\n"), "VmHWM"); err == nil {
		t.Error("status without VmHWM accepted")
	}
}

// TestProcessTree reads the real /proc: a child of this test shows up in
// its tree, and the tree's peak RSS covers at least this process's.
func TestProcessTree(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("SKIP: no /proc on this system")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("SKIP: cannot run sleep: %v", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	self := os.Getpid()
	tree := processTree(self)
	if tree[0] != self {
		t.Fatalf("tree %v does not start at %d", tree, self)
	}
	found := false
	for _, pid := range tree[1:] {
		found = found || pid == cmd.Process.Pid
	}
	if !found {
		t.Errorf("child %d not in tree %v", cmd.Process.Pid, tree)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	own, err := parseStatusBytes(status, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	total, err := treePeakRSS(self)
	if err != nil {
		t.Fatal(err)
	}
	if own <= 0 || total < own {
		t.Errorf("own peak %d, tree peak %d", own, total)
	}
	if _, err := treeCPU(self); err != nil {
		t.Fatal(err)
	}
	if _, err := treeCPU(1 << 30); err == nil {
		t.Error("CPU of a nonexistent pid read without error")
	}
}

package accesslog

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/stats"
)

func fileLoggers(t testing.TB, m *FileManager, path, format string) Loggers {
	t.Helper()
	ls, err := New(parseLogs(t, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+`
    log_format: {text_format: "`+format+`"}
`), Deps{Files: m})
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// TestRotation is logrotate's sequence: rename the file, POST /reopen_logs
// (Reopen); lines before go to the renamed file, lines after to a new one.
func TestRotation(t *testing.T) {
	m, st := newManager(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	ls := fileLoggers(t, m, path, `%RESPONSE_CODE% %REQ(:PATH)%\n`)
	ctx := httpContext()
	ls.Log(ctx)
	ls.Log(ctx)
	m.Flush()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	ls.Log(ctx) // buffered before the reopen: belongs to the old file
	if err := m.Reopen(); err != nil {
		t.Fatal(err)
	}
	ctx.Request.Path = "/after"
	ls.Log(ctx)
	m.Flush()
	if got, want := readFile(t, path+".1"), strings.Repeat("201 /v1/items?id=7\n", 3); got != want {
		t.Fatalf("rotated file %q, want %q", got, want)
	}
	if got, want := readFile(t, path), "201 /after\n"; got != want {
		t.Fatalf("new file %q, want %q", got, want)
	}
	if n := counter(st, "filesystem.write_buffered"); n != 4 {
		t.Errorf("write_buffered = %d, want 4", n)
	}
	if n := counter(st, "filesystem.write_completed"); n < 2 {
		t.Errorf("write_completed = %d, want at least 2", n)
	}
	if n := st.Gauge("filesystem.write_total_buffered", stats.Accumulate).Value(); n != 0 {
		t.Errorf("write_total_buffered = %d after flush", n)
	}
}

// TestSharedWriter: every logger naming a path shares one writer, so lines
// never interleave mid-line and the file is opened once.
func TestSharedWriter(t *testing.T) {
	m, _ := newManager(t)
	path := filepath.Join(t.TempDir(), "shared.log")
	a := fileLoggers(t, m, path, `a %RESPONSE_CODE%\n`)
	b := fileLoggers(t, m, filepath.Dir(path)+"//shared.log", `b %RESPONSE_CODE%\n`)
	c := fileLoggers(t, m, filepath.Join(filepath.Dir(path), ".", "shared.log"), `c %RESPONSE_CODE%\n`)
	if a[0].sink != b[0].sink || a[0].sink != c[0].sink {
		t.Fatal("loggers of one path do not share a writer")
	}
	var wg sync.WaitGroup
	for _, ls := range []Loggers{a, b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := httpContext()
			for range 500 {
				ls.Log(ctx)
			}
		}()
	}
	wg.Wait()
	m.Close()
	lines := strings.Split(strings.TrimSuffix(readFile(t, path), "\n"), "\n")
	counts := map[string]int{}
	for _, l := range lines {
		counts[l]++
	}
	if len(lines) != 1500 || counts["a 201"] != 500 || counts["b 201"] != 500 || counts["c 201"] != 500 {
		t.Fatalf("got %d lines: %v", len(lines), counts)
	}
}

// TestUnwritable: a destination that fails every write (/dev/full) counts
// failures, reports them once, and Log keeps returning at once.
func TestUnwritable(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	st := stats.NewStore()
	var logs bytes.Buffer
	var logMu sync.Mutex
	m := NewFileManager(st, slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil)))
	m.SetFlushInterval(time.Hour)
	defer m.Close()
	ls := fileLoggers(t, m, "/dev/full", `%RESPONSE_CODE%\n`)
	ctx := httpContext()
	for range 3 {
		ls.Log(ctx)
		m.Flush()
	}
	if n := counter(st, "filesystem.write_failed"); n != 3 {
		t.Fatalf("write_failed = %d, want 3", n)
	}
	if n := counter(st, "filesystem.write_completed"); n != 0 {
		t.Fatalf("write_completed = %d, want 0", n)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if strings.Count(out, "access log write failed") != 1 || !strings.Contains(out, "/dev/full") {
		t.Fatalf("want one report naming the path, got:\n%s", out)
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestReopenFailure: the directory is gone, so reopening fails; the error
// is returned and counted, and lines still go to the old descriptor.
func TestReopenFailure(t *testing.T) {
	m, st := newManager(t)
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "access.log")
	ls := fileLoggers(t, m, path, `%RESPONSE_CODE%\n`)
	keep, err := os.Open(path) // to read what lands in the unlinked file
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := m.Reopen(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Reopen error = %v, want one naming %s", err, path)
	}
	ls.Log(httpContext())
	m.Flush() // retries the reopen, fails again, writes to the old file
	if n := counter(st, "filesystem.reopen_failed"); n != 2 {
		t.Fatalf("reopen_failed = %d, want 2", n)
	}
	b := make([]byte, 64)
	n, _ := keep.Read(b)
	if string(b[:n]) != "201\n" {
		t.Fatalf("old file has %q", b[:n])
	}
	// The directory comes back: the next flush reopens.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ls.Log(httpContext())
	m.Flush()
	if got := readFile(t, path); got != "201\n" {
		t.Fatalf("reopened file has %q", got)
	}
}

// TestDropWhenFull: with the writer stalled (no flush), lines beyond the
// bound are dropped and counted, and Log does not block.
func TestDropWhenFull(t *testing.T) {
	st := stats.NewStore()
	m := NewFileManager(st, nil)
	m.SetFlushInterval(time.Hour)
	m.maxBuffered = 100
	defer m.Close()
	path := filepath.Join(t.TempDir(), "full.log")
	ls := fileLoggers(t, m, path, `0123456789012345678\n`) // 20 bytes
	for range 8 {
		ls.Log(nil)
	}
	if n := counter(st, "filesystem.write_dropped"); n != 3 {
		t.Fatalf("write_dropped = %d, want 3", n)
	}
	if n := st.Gauge("filesystem.write_total_buffered", stats.Accumulate).Value(); n != 100 {
		t.Fatalf("write_total_buffered = %d, want 100", n)
	}
	m.Close()
	if got := readFile(t, path); got != strings.Repeat("0123456789012345678\n", 5) {
		t.Fatalf("file has %q", got)
	}
	ls.Log(nil) // after Close: dropped, no panic
	if n := counter(st, "filesystem.write_dropped"); n != 4 {
		t.Fatalf("write_dropped after Close = %d, want 4", n)
	}
}

// TestTimerFlush: nothing calls Flush; the writer's timer writes the line.
func TestTimerFlush(t *testing.T) {
	st := stats.NewStore()
	m := NewFileManager(st, nil)
	m.SetFlushInterval(5 * time.Millisecond)
	defer m.Close()
	path := filepath.Join(t.TempDir(), "timer.log")
	ls := fileLoggers(t, m, path, `%RESPONSE_CODE%\n`)
	ls.Log(httpContext())
	testutil.WaitFor(t, "the log to be written", func() bool { return readFile(t, path) == "201\n" })
	if counter(st, "filesystem.flushed_by_timer") == 0 {
		t.Fatal("flushed_by_timer not counted")
	}
}

// TestFlushWhenFull: a buffer past 64 KiB is written without the timer.
func TestFlushWhenFull(t *testing.T) {
	m, st := newManager(t)
	path := filepath.Join(t.TempDir(), "big.log")
	ls := fileLoggers(t, m, path, strings.Repeat("x", 1023)+`\n`)
	for range 70 {
		ls.Log(nil)
	}
	testutil.WaitFor(t, "the log to be written", func() bool { return counter(st, "filesystem.write_completed") > 0 })
	if counter(st, "filesystem.flushed_by_timer") != 0 {
		t.Fatal("flushed by the timer, not by size")
	}
}

// TestLogAllocs: logging a request through a filter and a file sink does
// not allocate.
func TestLogAllocs(t *testing.T) {
	m, _ := newManager(t)
	path := filepath.Join(t.TempDir(), "allocs.log")
	ls, err := New(parseLogs(t, `
- filter: {status_code_filter: {comparison: {op: GE, value: {default_value: 200, runtime_key: k}}}}
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+`
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+`
    log_format: {json_format: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%", ua: "%REQ(USER-AGENT)%", start: "%START_TIME%", up: "%UPSTREAM_HOST%"}}
`), Deps{Files: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := httpContext()
	ctx.Request.Header = ctx.Request.Header[:4] // without the header that needs escaping
	for range 10 {
		ls.Log(ctx) // warm the pool and the sink's buffer
	}
	if n := testing.AllocsPerRun(200, func() { ls.Log(ctx) }); n > 0 {
		t.Fatalf("Log allocates %v times per call", n)
	}
}

func BenchmarkLogFile(b *testing.B) {
	st := stats.NewStore()
	m := NewFileManager(st, nil)
	defer m.Close()
	path := filepath.Join(b.TempDir(), "bench.log")
	ls, err := New(parseLogs(b, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+`
`), Deps{Files: m})
	if err != nil {
		b.Fatal(err)
	}
	ctx := httpContext()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ls.Log(ctx)
		}
	})
	// Lines the writer could not keep up with (the bound at work).
	b.ReportMetric(float64(counter(st, "filesystem.write_dropped"))/float64(b.N), "dropped/op")
}

func BenchmarkLogFileJSON(b *testing.B) {
	m := NewFileManager(stats.NewStore(), nil)
	defer m.Close()
	path := filepath.Join(b.TempDir(), "bench.log")
	ls, err := New(parseLogs(b, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+`
    log_format: {json_format: {code: "%RESPONSE_CODE%", method: "%REQ(:METHOD)%", path: "%REQ(:PATH)%", ua: "%REQ(USER-AGENT)%", start: "%START_TIME%", up: "%UPSTREAM_HOST%", dur: "%DURATION%", flags: "%RESPONSE_FLAGS%"}}
`), Deps{Files: m})
	if err != nil {
		b.Fatal(err)
	}
	ctx := httpContext()
	b.ReportAllocs()
	for b.Loop() {
		ls.Log(ctx)
	}
}

// BenchmarkLogNone is a proxy without access logs: nil Loggers.
func BenchmarkLogNone(b *testing.B) {
	var ls Loggers
	ctx := &formatter.Context{}
	b.ReportAllocs()
	for b.Loop() {
		ls.Log(ctx)
	}
}

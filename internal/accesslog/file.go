package accesslog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
)

// DefaultFlushInterval is how often buffered lines are written when the
// buffer has not filled first.
const DefaultFlushInterval = time.Second

const (
	// flushSize wakes a sink's writer early: once this much is buffered
	// it is written without waiting for the timer (Envoy's minimum flush
	// size is the same 64 KiB).
	flushSize = 64 << 10
	// defaultMaxBuffered bounds one sink's buffer. A writer that cannot
	// keep up (a slow disk, a blocked pipe on stdout) makes Log drop lines
	// and count them instead of growing memory or blocking requests.
	defaultMaxBuffered = 4 << 20
)

// fileStats are Envoy's file access log stats, rooted at "filesystem.",
// shared by every file. write_dropped is Legate's: Envoy's buffer is
// unbounded, Legate's is not.
type fileStats struct {
	writeBuffered  *stats.Counter
	writeCompleted *stats.Counter
	writeFailed    *stats.Counter
	flushedByTimer *stats.Counter
	reopenFailed   *stats.Counter
	writeDropped   *stats.Counter
	totalBuffered  *stats.Gauge
}

// FileManager owns the files access logs write to: one buffered,
// asynchronous writer per path, shared by every logger (of every listener
// and connection manager) that names the path, as Envoy's access log
// manager does. Its methods are safe for concurrent use.
type FileManager struct {
	stats  fileStats
	logger *slog.Logger

	mu            sync.Mutex
	sinks         map[string]*sink
	flushInterval time.Duration
	maxBuffered   int
	closed        bool
	// stdout and stderr are the process's, replaceable by tests.
	stdout, stderr *os.File
}

// NewFileManager returns a manager whose stats go to st (nil: a private
// store) and whose write errors are reported to logger (nil: discarded).
func NewFileManager(st *stats.Store, logger *slog.Logger) *FileManager {
	if st == nil {
		st = stats.NewStore()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sc := st.Scope("filesystem")
	return &FileManager{
		stats: fileStats{
			writeBuffered:  sc.Counter("write_buffered"),
			writeCompleted: sc.Counter("write_completed"),
			writeFailed:    sc.Counter("write_failed"),
			flushedByTimer: sc.Counter("flushed_by_timer"),
			reopenFailed:   sc.Counter("reopen_failed"),
			writeDropped:   sc.Counter("write_dropped"),
			totalBuffered:  sc.Gauge("write_total_buffered", stats.Accumulate),
		},
		logger:        logger,
		sinks:         map[string]*sink{},
		flushInterval: DefaultFlushInterval,
		maxBuffered:   defaultMaxBuffered,
		stdout:        os.Stdout,
		stderr:        os.Stderr,
	}
}

// SetFlushInterval changes the timer flush interval of sinks opened from
// now on (Envoy's --file-flush-interval-msec). Call it before building
// loggers.
func (m *FileManager) SetFlushInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultFlushInterval
	}
	m.mu.Lock()
	m.flushInterval = d
	m.mu.Unlock()
}

// Reopen flushes and reopens every file, for log rotation (POST
// /reopen_logs, or after logrotate renamed the files). A file that cannot
// be reopened keeps being written through its old descriptor, is retried
// at every flush, and is counted in filesystem.reopen_failed; the errors
// are returned joined.
func (m *FileManager) Reopen() error {
	var errs []error
	for _, s := range m.snapshot() {
		if err := s.reopen(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Flush writes everything buffered so far, synchronously.
func (m *FileManager) Flush() {
	for _, s := range m.snapshot() {
		s.flush(false)
	}
}

// Close flushes everything, stops the writers and closes the files. Lines
// logged afterwards are dropped (and counted). Close is idempotent.
func (m *FileManager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	for _, s := range m.snapshot() {
		s.stop()
	}
}

func (m *FileManager) snapshot() []*sink {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*sink, 0, len(m.sinks))
	for _, s := range m.sinks {
		out = append(out, s)
	}
	return out
}

// file returns the sink for path, opening the file the first time. As in
// Envoy, a file that cannot be opened fails the configuration.
func (m *FileManager) file(path string) (*sink, error) {
	if path == "" {
		return nil, errors.New("must not be empty")
	}
	key := filepath.Clean(path)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("access log files are closed")
	}
	if s := m.sinks[key]; s != nil {
		return s, nil
	}
	f, err := openLog(path)
	if err != nil {
		return nil, err
	}
	s := m.newSinkLocked(key, path, f, true)
	return s, nil
}

// Writer returns a writer that appends to path through the same buffered,
// reopenable writer the access logs use, for other line logs (the admin's
// access_log_path). Each Write must be one whole line; it never blocks.
func (m *FileManager) Writer(path string) (io.Writer, error) {
	s, err := m.file(path)
	if err != nil {
		return nil, err
	}
	return lineWriter{s}, nil
}

type lineWriter struct{ s *sink }

func (w lineWriter) Write(line []byte) (int, error) {
	w.s.write(line)
	return len(line), nil
}

// stream returns the sink for the process's stdout or stderr.
func (m *FileManager) stream(stderr bool) (*sink, error) {
	key, name := "\x00stdout", "stdout"
	if stderr {
		key, name = "\x00stderr", "stderr"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("access log files are closed")
	}
	if s := m.sinks[key]; s != nil {
		return s, nil
	}
	f := m.stdout
	if stderr {
		f = m.stderr
	}
	return m.newSinkLocked(key, name, f, false), nil
}

func (m *FileManager) newSinkLocked(key, name string, f *os.File, owned bool) *sink {
	s := &sink{
		m:       m,
		name:    name,
		f:       f,
		owned:   owned,
		max:     m.maxBuffered,
		buf:     make([]byte, 0, flushSize),
		spare:   make([]byte, 0, flushSize),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if owned {
		s.path = name
	}
	m.sinks[key] = s
	go s.run(m.flushInterval)
	return s
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// sink is one destination: a bounded in-memory buffer that Log appends to
// and a goroutine that writes it out. Requests never wait for the disk:
// they hold mu only to copy a formatted line into buf (Envoy does the
// same under its flush lock); the writer swaps buffers under mu and writes
// outside it.
type sink struct {
	m     *FileManager
	name  string // path, or "stdout"/"stderr"
	path  string // "" when the sink cannot be reopened
	owned bool   // the file is ours to close
	max   int

	mu     sync.Mutex
	buf    []byte
	closed bool // set by stop; write then drops

	kick          chan struct{}
	done, stopped chan struct{}

	// fileMu serialises flushes (writer goroutine, Flush, Reopen, Close)
	// and guards the fields below.
	fileMu     sync.Mutex
	f          *os.File
	spare      []byte
	needReopen bool
	failing    bool
}

// write buffers one formatted line; it never blocks on I/O.
func (s *sink) write(line []byte) {
	s.mu.Lock()
	if s.closed || len(s.buf)+len(line) > s.max {
		s.mu.Unlock()
		s.m.stats.writeDropped.Inc()
		return
	}
	s.buf = append(s.buf, line...)
	n := len(s.buf)
	s.mu.Unlock()
	s.m.stats.writeBuffered.Inc()
	s.m.stats.totalBuffered.Add(int64(len(line)))
	if n >= flushSize {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *sink) run(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.kick:
			s.flush(false)
		case <-t.C:
			s.flush(true)
		case <-s.done:
			s.flush(false)
			close(s.stopped)
			return
		}
	}
}

// flush writes out what is buffered.
func (s *sink) flush(byTimer bool) {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	s.mu.Lock()
	data := s.buf
	if len(data) == 0 {
		s.mu.Unlock()
		return
	}
	s.buf = s.spare[:0]
	s.mu.Unlock()
	s.spare = nil
	s.m.stats.totalBuffered.Add(-int64(len(data)))
	if byTimer {
		s.m.stats.flushedByTimer.Inc()
	}
	if s.needReopen {
		s.reopenLocked()
	}
	_, err := s.f.Write(data)
	if err != nil {
		// The lines are dropped: keeping them would grow memory while
		// the destination is broken.
		s.m.stats.writeFailed.Inc()
		if !s.failing {
			s.failing = true
			s.m.logger.Error("access log write failed; lines are dropped until writes succeed", "path", s.name, "error", err)
		}
	} else {
		s.m.stats.writeCompleted.Inc()
		if s.failing {
			s.failing = false
			s.m.logger.Info("access log writes succeed again", "path", s.name)
		}
	}
	// Keep the buffer for the next swap. A burst may have grown it (up to
	// the bound); keeping it means a sustained load stops allocating.
	s.spare = data[:0]
}

func (s *sink) reopen() error {
	if s.path == "" {
		return nil
	}
	// What was logged before the rotation belongs to the old file.
	s.flush(false)
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	return s.reopenLocked()
}

func (s *sink) reopenLocked() error {
	f, err := openLog(s.path)
	if err != nil {
		s.m.stats.reopenFailed.Inc()
		if !s.needReopen {
			s.m.logger.Error("access log reopen failed; still writing to the old file, retrying at every flush", "path", s.path, "error", err)
		}
		s.needReopen = true
		return fmt.Errorf("access log %q: %w", s.path, err)
	}
	if s.needReopen {
		s.m.logger.Info("access log reopened", "path", s.path)
	}
	old := s.f
	s.f, s.needReopen = f, false
	old.Close()
	return nil
}

func (s *sink) stop() {
	close(s.done)
	<-s.stopped
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	// A line that raced with the final flush is still written.
	s.mu.Lock()
	s.closed = true
	data := s.buf
	s.buf = nil
	s.mu.Unlock()
	if len(data) > 0 {
		s.m.stats.totalBuffered.Add(-int64(len(data)))
		if _, err := s.f.Write(data); err != nil {
			s.m.stats.writeFailed.Inc()
		} else {
			s.m.stats.writeCompleted.Inc()
		}
	}
	if s.owned {
		s.f.Close()
	}
}

package main

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sync"
	"time"
)

// maxReportBytes bounds one report's body; Legate's batches are far smaller.
const maxReportBytes = 8 << 20

// maxKeptSpans bounds what the collector remembers for --check.
const maxKeptSpans = 10000

// zipkinSpan is the part of a Zipkin v2 JSON span the demo looks at.
type zipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId,omitempty"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind,omitempty"`
	LocalEndpoint *zipkinEndpoint   `json:"localEndpoint,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
}

type zipkinEndpoint struct {
	ServiceName string `json:"serviceName,omitempty"`
}

// label is what a report line shows for a span: its operation name, else
// the cluster it went to.
func (s *zipkinSpan) label() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Tags["upstream_cluster"]
}

// collector is a minimal Zipkin v2 collector: it accepts JSON span lists at
// one path, as Zipkin's POST /api/v2/spans does, answers 202, remembers
// the spans and prints a line per report so that the user sees spans
// leave Legate. It stores nothing on disk and has no query API; the admin
// dashboard is where traces are browsed.
type collector struct {
	ln   net.Listener
	srv  *http.Server
	path string
	out  io.Writer // one line per report; nil for none
	done chan struct{}

	mu      sync.Mutex
	reports int
	total   int
	spans   []zipkinSpan // the latest maxKeptSpans
}

// startCollector listens on addr (port 0 picks one) and serves reports
// POSTed to path until close.
func startCollector(addr, path string, out io.Writer) (*collector, error) {
	if path == "" {
		path = "/api/v2/spans"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("zipkin collector: %w", err)
	}
	c := &collector{ln: ln, path: path, out: out, done: make(chan struct{})}
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(c.done)
		// ErrServerClosed after close; any other error leaves the
		// collector silent, which --check then reports.
		_ = c.srv.Serve(ln)
	}()
	return c, nil
}

// addr is the address the collector listens on.
func (c *collector) addr() string { return c.ln.Addr().String() }

func (c *collector) close() {
	_ = c.srv.Close()
	<-c.done
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != c.path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a JSON list of Zipkin v2 spans", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			// Set collector_endpoint_version: HTTP_JSON in the config.
			http.Error(w, "this demo collector accepts Zipkin v2 JSON only (HTTP_JSON), not "+ct, http.StatusUnsupportedMediaType)
			return
		}
	}
	body := io.Reader(http.MaxBytesReader(w, r.Body, maxReportBytes))
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "gzip: "+err.Error(), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = io.LimitReader(zr, maxReportBytes)
	}
	var spans []zipkinSpan
	if err := json.NewDecoder(body).Decode(&spans); err != nil {
		status := http.StatusBadRequest
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, "want a JSON list of Zipkin v2 spans: "+err.Error(), status)
		return
	}
	for i, s := range spans {
		if s.TraceID == "" || s.ID == "" {
			http.Error(w, fmt.Sprintf("span %d: traceId and id are required", i), http.StatusBadRequest)
			return
		}
	}
	w.WriteHeader(http.StatusAccepted)
	if len(spans) > 0 {
		c.record(spans)
	}
}

// record keeps spans and prints the report line. The line is written
// under the lock so that lines come out in the order counted.
func (c *collector) record(spans []zipkinSpan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reports++
	c.total += len(spans)
	c.spans = append(c.spans, spans...)
	if over := len(c.spans) - maxKeptSpans; over > 0 {
		c.spans = append(c.spans[:0], c.spans[over:]...)
	}
	if c.out != nil {
		last := &spans[len(spans)-1]
		fmt.Fprintf(c.out, "[zipkin] %d %s received (%d in all), latest trace %s (%s)\n",
			len(spans), plural(len(spans), "span", "spans"), c.total, last.TraceID, last.label())
	}
}

// snapshot returns the report count, the span count and a copy of the
// spans kept, oldest first.
func (c *collector) snapshot() (reports, total int, spans []zipkinSpan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reports, c.total, append([]zipkinSpan(nil), c.spans...)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

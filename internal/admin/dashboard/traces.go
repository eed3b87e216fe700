package dashboard

import (
	"sort"

	"github.com/legate-proxy/legate/internal/tracing"
)

// maxTraces is how many traces the list shows.
const maxTraces = 50

// traceSummary is one row of the traces list.
type traceSummary struct {
	ID         string `json:"id"`
	Name       string `json:"name"` // the root span's (or earliest span's) operation
	Service    string `json:"service,omitempty"`
	Start      int64  `json:"start"`       // unix ms
	DurationUs int64  `json:"duration_us"` // first start to last end
	Spans      int    `json:"spans"`
	Status     string `json:"status,omitempty"` // root's http.status_code
	Error      bool   `json:"error"`
	Sampled    bool   `json:"sampled"`
}

// spanData is one bar of the waterfall.
type spanData struct {
	ID         string      `json:"id"`
	Parent     string      `json:"parent,omitempty"`
	Name       string      `json:"name"`
	Service    string      `json:"service,omitempty"`
	Kind       string      `json:"kind,omitempty"`
	OffsetUs   int64       `json:"offset_us"` // from the trace's first start
	DurationUs int64       `json:"duration_us"`
	Depth      int         `json:"depth"`
	Tags       [][2]string `json:"tags"`
}

// traceDetail is one trace's waterfall.
type traceDetail struct {
	traceSummary
	SpanList []spanData `json:"span_list"`
}

// groupTraces groups a ring snapshot by trace, newest first.
func groupTraces(spans []tracing.SpanRecord) map[string][]tracing.SpanRecord {
	by := map[string][]tracing.SpanRecord{}
	for _, s := range spans {
		by[s.TraceID] = append(by[s.TraceID], s)
	}
	return by
}

func summarize(id string, spans []tracing.SpanRecord) traceSummary {
	first, last := spans[0].Start, spans[0].Start.Add(spans[0].Duration)
	root := -1
	ids := make(map[string]bool, len(spans))
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	sum := traceSummary{ID: id, Spans: len(spans)}
	for i, s := range spans {
		if s.Start.Before(first) {
			first = s.Start
		}
		if end := s.Start.Add(s.Duration); end.After(last) {
			last = end
		}
		// The root is the span without a parent in this trace; with an
		// incoming context Legate's own span has a parent we never saw.
		if (s.ParentID == "" || !ids[s.ParentID]) && (root < 0 || s.Start.Before(spans[root].Start)) {
			root = i
		}
		sum.Sampled = sum.Sampled || s.Sampled
		for _, t := range s.Tags {
			if t.Key == "error" && t.Value == "true" {
				sum.Error = true
			}
		}
	}
	if root < 0 {
		root = 0
	}
	r := spans[root]
	sum.Name, sum.Service = r.Name, r.Service
	for _, t := range r.Tags {
		if t.Key == "http.status_code" {
			sum.Status = t.Value
		}
	}
	sum.Start = first.UnixMilli()
	sum.DurationUs = last.Sub(first).Microseconds()
	return sum
}

// recentTraces lists up to maxTraces traces, the most recently started
// first.
func recentTraces(spans []tracing.SpanRecord) []traceSummary {
	by := groupTraces(spans)
	out := make([]traceSummary, 0, len(by))
	for id, ss := range by {
		out = append(out, summarize(id, ss))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start > out[j].Start
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > maxTraces {
		out = out[:maxTraces]
	}
	return out
}

// traceByID builds the waterfall of one trace: spans depth-first from the
// roots, children by start time.
func traceByID(spans []tracing.SpanRecord, id string) (traceDetail, bool) {
	var ss []tracing.SpanRecord
	for _, s := range spans {
		if s.TraceID == id {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return traceDetail{}, false
	}
	d := traceDetail{traceSummary: summarize(id, ss)}
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].Start.Before(ss[j].Start) })
	first := ss[0].Start
	present := make(map[string]bool, len(ss))
	children := map[string][]int{}
	for _, s := range ss {
		present[s.SpanID] = true
	}
	var roots []int
	for i, s := range ss {
		if s.ParentID == "" || !present[s.ParentID] || s.ParentID == s.SpanID {
			roots = append(roots, i)
		} else {
			children[s.ParentID] = append(children[s.ParentID], i)
		}
	}
	done := make([]bool, len(ss))
	var walk func(i, depth int)
	walk = func(i, depth int) {
		if done[i] { // a malformed trace with a cycle
			return
		}
		done[i] = true
		s := ss[i]
		sd := spanData{ID: s.SpanID, Parent: s.ParentID, Name: s.Name, Service: s.Service, Kind: s.Kind,
			OffsetUs: s.Start.Sub(first).Microseconds(), DurationUs: s.Duration.Microseconds(), Depth: depth,
			Tags: make([][2]string, 0, len(s.Tags))}
		for _, t := range s.Tags {
			sd.Tags = append(sd.Tags, [2]string{t.Key, t.Value})
		}
		d.SpanList = append(d.SpanList, sd)
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	// Spans only reachable through a cycle still get a row.
	for i := range ss {
		if !done[i] {
			walk(i, 0)
		}
	}
	return d, true
}

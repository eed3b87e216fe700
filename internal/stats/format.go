package stats

import (
	"bufio"
	"encoding/json"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// SupportedQuantiles are the quantiles /stats reports for histograms, as
// Envoy's P0 … P100.
var SupportedQuantiles = []float64{0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1}

// Legate keeps one cumulative histogram per name rather than Envoy's
// per-flush interval histograms, so the text and JSON output report the
// cumulative value for both the "interval" and the "cumulative" column.

// Quantile estimates quantile q (0..1) from per-bucket counts (the last
// count is the overflow bucket) by linear interpolation inside the bucket
// that holds the rank, as Prometheus' histogram_quantile does. Samples in
// the overflow bucket are reported at the highest bound. ok is false when
// there are no samples.
func Quantile(bounds []float64, counts []uint64, q float64) (v float64, ok bool) {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if float64(cum+c) >= rank {
			if i >= len(bounds) {
				return bounds[len(bounds)-1], true
			}
			lower := 0.0
			if i > 0 {
				lower = bounds[i-1]
			}
			v := lower + (bounds[i]-lower)*(rank-float64(cum))/float64(c)
			// Trim float noise (2999.9999999999995) that no bucket width
			// could justify.
			return math.Round(v*1e6) / 1e6, true
		}
		cum += c
	}
	return bounds[len(bounds)-1], true
}

// histSnapshot is one consistent read of a histogram's buckets.
type histSnapshot struct {
	h      *Histogram
	counts []uint64
	total  uint64
	sum    uint64
}

func snapshot(h *Histogram) histSnapshot {
	s := histSnapshot{h: h, counts: h.BucketCounts(), sum: h.Sum()}
	for _, c := range s.counts {
		s.total += c
	}
	return s
}

// scalar is a counter or gauge line of /stats.
type scalar struct {
	name  string
	value string
}

func collect(s *Store, filter *regexp.Regexp, usedOnly bool) ([]scalar, []histSnapshot) {
	keep := func(name string) bool { return filter == nil || filter.MatchString(name) }
	var out []scalar
	// "Used" in Envoy means written at least once; Legate has no such flag
	// on the hot path, so a non-zero value stands in for it.
	for _, c := range s.Counters() {
		if keep(c.Name()) && (!usedOnly || c.Value() != 0) {
			out = append(out, scalar{c.Name(), strconv.FormatUint(c.Value(), 10)})
		}
	}
	for _, g := range s.Gauges() {
		if keep(g.Name()) && (!usedOnly || g.Value() != 0) {
			out = append(out, scalar{g.Name(), strconv.FormatInt(g.Value(), 10)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	var hs []histSnapshot
	for _, h := range s.Histograms() {
		if !keep(h.Name()) {
			continue
		}
		snap := snapshot(h)
		if usedOnly && snap.total == 0 {
			continue
		}
		hs = append(hs, snap)
	}
	return out, hs
}

// WriteText writes /stats' plain-text form: counters and gauges as
// "name: value" sorted by name, then histograms as
// "name: P0(interval,cumulative) P25(…) … P100(…)" or
// "name: No recorded values". filter (may be nil) keeps names it matches
// anywhere; usedOnly drops stats that were never written.
func WriteText(w io.Writer, s *Store, filter *regexp.Regexp, usedOnly bool) error {
	bw := bufio.NewWriter(w)
	scalars, hists := collect(s, filter, usedOnly)
	for _, sc := range scalars {
		bw.WriteString(sc.name)
		bw.WriteString(": ")
		bw.WriteString(sc.value)
		bw.WriteByte('\n')
	}
	for _, h := range hists {
		bw.WriteString(h.h.Name())
		bw.WriteString(": ")
		if h.total == 0 {
			bw.WriteString("No recorded values\n")
			continue
		}
		for i, q := range SupportedQuantiles {
			if i > 0 {
				bw.WriteByte(' ')
			}
			v, _ := Quantile(h.h.Bounds(), h.counts, q)
			val := formatFloat(v)
			bw.WriteString("P")
			bw.WriteString(formatFloat(q * 100))
			bw.WriteString("(")
			bw.WriteString(val)
			bw.WriteString(",")
			bw.WriteString(val)
			bw.WriteString(")")
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// WriteJSON writes /stats?format=json:
// {"stats":[{"name":…,"value":…},…,{"histograms":{"supported_quantiles":[…],
// "computed_quantiles":[{"name":…,"values":[{"interval":…,"cumulative":…},…]}]}}]}.
// Quantiles of a histogram without samples are null.
func WriteJSON(w io.Writer, s *Store, filter *regexp.Regexp, usedOnly bool) error {
	bw := bufio.NewWriter(w)
	scalars, hists := collect(s, filter, usedOnly)
	bw.WriteString(`{"stats":[`)
	for i, sc := range scalars {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(`{"name":`)
		writeJSONString(bw, sc.name)
		bw.WriteString(`,"value":`)
		bw.WriteString(sc.value)
		bw.WriteByte('}')
	}
	if len(hists) > 0 {
		if len(scalars) > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(`{"histograms":{"supported_quantiles":[`)
		for i, q := range SupportedQuantiles {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString(formatFloat(q * 100))
		}
		bw.WriteString(`],"computed_quantiles":[`)
		for i, h := range hists {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString(`{"name":`)
			writeJSONString(bw, h.h.Name())
			bw.WriteString(`,"values":[`)
			for j, q := range SupportedQuantiles {
				if j > 0 {
					bw.WriteByte(',')
				}
				val := "null"
				if v, ok := Quantile(h.h.Bounds(), h.counts, q); ok {
					val = formatFloat(v)
				}
				bw.WriteString(`{"interval":`)
				bw.WriteString(val)
				bw.WriteString(`,"cumulative":`)
				bw.WriteString(val)
				bw.WriteByte('}')
			}
			bw.WriteString("]}")
		}
		bw.WriteString("]}}")
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

func writeJSONString(bw *bufio.Writer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	bw.Write(b)
}

// formatFloat prints like Envoy's {} formatting: the shortest form that
// reads back exactly, without an exponent for ordinary magnitudes.
func formatFloat(v float64) string {
	if a := math.Abs(v); a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabelValue(s string) string { return labelEscaper.Replace(s) }

// ResetCounters sets every counter to zero, for the admin's
// /reset_counters; gauges and histograms are left alone, as in Envoy.
func (s *Store) ResetCounters() {
	for _, c := range s.Counters() {
		c.v.Store(0)
	}
}

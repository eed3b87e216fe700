package sink

import (
	"math"
	"strconv"
	"strings"

	"github.com/legate-proxy/legate/internal/stats"
)

// metric is one stat's contribution to a flush.
type metric struct {
	name  string
	kind  byte // 'c' counter delta, 'g' gauge, 'h' histogram summary
	value int64
	total uint64 // a counter's cumulative value (value is the delta)
	unit  stats.Unit
	hist  []histLine
}

// histLine stands for n samples of an interval at value.
type histLine struct {
	value float64
	n     uint64
}

// snapshot reads every stat and works out the interval's deltas; callers
// hold f.mu.
func (f *Flusher) snapshot() []metric {
	var out []metric
	for _, c := range f.store.Counters() {
		v := c.Value()
		prev := f.counters[c]
		f.counters[c] = v
		delta := v - prev
		if v < prev { // /reset_counters ran since the last flush
			delta = v
		}
		if v != 0 {
			f.used[c] = true
		}
		if !f.used[c] {
			continue
		}
		out = append(out, metric{name: c.Name(), kind: 'c', value: int64(min(delta, math.MaxInt64)), total: v})
	}
	for _, g := range f.store.Gauges() {
		v := g.Value()
		if v != 0 {
			f.used[g] = true
		}
		if f.used[g] {
			out = append(out, metric{name: g.Name(), kind: 'g', value: v})
		}
	}
	for _, h := range f.store.Histograms() {
		counts, sum := h.BucketCounts(), h.Sum()
		prev := f.hists[h]
		f.hists[h] = histState{counts: counts, sum: sum}
		lines := intervalLines(h.Bounds(), counts, prev.counts, sum-prev.sum)
		if len(lines) > 0 {
			out = append(out, metric{name: h.Name(), kind: 'h', unit: h.Unit(), hist: lines})
		}
	}
	return out
}

// intervalLines summarises the samples recorded since the previous
// snapshot: one line per bucket that got any (see the package comment).
func intervalLines(bounds []float64, counts, prev []uint64, sumDelta uint64) []histLine {
	var lines []histLine
	var total uint64
	for i, c := range counts {
		var p uint64
		if i < len(prev) {
			p = prev[i]
		}
		if c <= p {
			continue
		}
		n := c - p
		total += n
		var v float64
		switch {
		case i >= len(bounds):
			v = bounds[len(bounds)-1]
		case i == 0:
			v = bounds[0] / 2
		default:
			v = (bounds[i-1] + bounds[i]) / 2
		}
		lines = append(lines, histLine{value: v, n: n})
	}
	if len(lines) == 1 {
		lines[0].value = float64(sumDelta) / float64(total)
	}
	return lines
}

// format renders a snapshot as statsd lines for one sink.
type format struct {
	prefix  string
	tagged  bool // DogStatsD: tag-extracted names plus "|#name:value,…"
	scaleUs bool // scale_histogram_units_to_milliseconds
}

func (fm *format) render(snap []metric, tx *stats.TagExtractor) []string {
	out := make([]string, 0, len(snap))
	var b strings.Builder
	for _, m := range snap {
		name, tags := m.name, ""
		if fm.tagged {
			t := tx.Extract(m.name)
			name = t.Name
			if len(t.Tags) > 0 {
				var tb strings.Builder
				tb.WriteString("|#")
				for i, tag := range t.Tags {
					if i > 0 {
						tb.WriteByte(',')
					}
					tb.WriteString(tag.Name)
					tb.WriteByte(':')
					tb.WriteString(tag.Value)
				}
				tags = tb.String()
			}
		}
		line := func(value, typ, rate string) {
			b.Reset()
			b.WriteString(fm.prefix)
			b.WriteByte('.')
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(value)
			b.WriteString(typ)
			b.WriteString(rate)
			b.WriteString(tags)
			out = append(out, b.String())
		}
		switch m.kind {
		case 'c':
			line(strconv.FormatInt(m.value, 10), "|c", "")
		case 'g':
			line(strconv.FormatInt(m.value, 10), "|g", "")
		case 'h':
			for _, hl := range m.hist {
				v := hl.value
				if fm.scaleUs && m.unit == stats.Microseconds {
					v /= 1000
				}
				rate := ""
				if hl.n > 1 {
					rate = "|@" + strconv.FormatFloat(1/float64(hl.n), 'f', -1, 64)
				}
				line(formatValue(v), "|ms", rate)
			}
		}
	}
	return out
}

// formatValue prints a sample value without exponent and with at most
// three decimals (microsecond resolution for milliseconds).
func formatValue(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

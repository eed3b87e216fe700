package stats

import (
	"bufio"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// /stats/prometheus: Envoy's names exactly, and output that Prometheus' own
// linter (client_golang's promlint) accepts but for unit words.
//
// Envoy's exposition fails promlint in three ways; two are resolved here
// without changing the series names users' dashboards query:
//
//   - No HELP text. Every family gets "# HELP <family> Envoy <kind>
//     <tag-extracted Envoy name>." — additive, harmless.
//
//   - Counters whose Envoy name does not end in _total
//     (envoy_cluster_upstream_rq_xx, envoy_cluster_upstream_cx_connect_fail,
//     …). Envoy itself emits these as "# TYPE … counter" without a _total
//     suffix, and dashboards query exactly those names, so appending _total
//     (what OpenMetrics requires of a counter's sample, and what promlint
//     asks for) would break every such query. Legate keeps the name and
//     declares the family "untyped", the text format's type for a metric
//     whose kind the exposer does not assert under Prometheus' naming
//     rules. PromQL's rate()/increase() work on it exactly as on a counter
//     (they never look at the declared type). Counters that do end in
//     _total stay "counter". Likewise a gauge whose Envoy name ends in
//     _total, _count, _sum or _bucket (cluster.<c>.membership_total) or
//     names its own type is declared "untyped". Legate serves only the
//     0.0.4 text format, never OpenMetrics, whose rule would force _total
//     into the sample name.
//
//   - Abbreviated or non-base units in names (_ms, _us, days). promlint
//     wants these renamed to seconds, but dashboards built for Envoy query
//     envoy_cluster_upstream_cx_connect_ms_bucket with bounds in
//     milliseconds, so names, bucket bounds and sums stay exactly Envoy's.
//     This is the one promlint complaint left.
//
// Rates are not exported: QPS and bandwidth are rate() over the counters
// (envoy_http_downstream_rq_total, envoy_http_downstream_cx_rx_bytes_total
// and _tx_, envoy_cluster_upstream_cx_rx_bytes_total, …), CPU use is
// rate(process_cpu_seconds_total), as Prometheus and the dashboard derive
// them.
//
// Names built from user-chosen identifiers that no tag extractor removes
// (a listener's stat_prefix, say) appear verbatim, as in Envoy; camelCase
// there is reported by promlint and can be avoided with snake_case names or
// a stats_tags extractor.

// promType is the TYPE a family is declared with: its own kind, or
// "untyped" where Prometheus' naming rules for that kind reject the Envoy
// name (see the comment at the top of this file).
func promType(fam, kind string) string {
	if strings.HasSuffix(fam, "_"+kind) || strings.Contains(fam, "_"+kind+"_") {
		return "untyped"
	}
	total := strings.HasSuffix(fam, "_total")
	switch kind {
	case "counter":
		if !total || hasReservedSuffix(fam) {
			return "untyped"
		}
	case "gauge":
		if total || hasReservedSuffix(fam) {
			return "untyped"
		}
	}
	return kind
}

func hasReservedSuffix(fam string) bool {
	return strings.HasSuffix(fam, "_count") || strings.HasSuffix(fam, "_sum") || strings.HasSuffix(fam, "_bucket")
}

// promEntry is one series of a metric family.
type promEntry struct {
	labels string // rendered, without braces; "" when untagged
	value  uint64
	gauge  int64
	hist   *histSnapshot
}

type promFamily struct {
	name string
	kind string // counter, gauge, histogram
	typ  string // declared TYPE
	help string
	// entries are unique by labels; the first stat wins.
	entries []promEntry
	labels  map[string]bool
}

// WritePrometheus writes /stats/prometheus in the text format 0.0.4: names
// get the tag extractor's treatment, the "envoy_" prefix and
// [^a-zA-Z0-9_] turned into '_'; tags become labels; each family has a
// HELP and a TYPE line. Counters come first, then gauges, then histograms
// with cumulative _bucket{le=…} series ending in +Inf, _sum and _count,
// then (when the store has them enabled) the process_* and go_* families.
// tx may be nil for a shared default extractor. filter (may be nil) is
// matched against Envoy's full names, and against the Prometheus names of
// the process families.
func WritePrometheus(w io.Writer, s *Store, tx *TagExtractor, filter *regexp.Regexp, usedOnly bool) error {
	if tx == nil {
		tx = defaultExtractor
	}
	keep := func(name string) bool { return filter == nil || filter.MatchString(name) }
	bw := bufio.NewWriter(w)

	fams := map[string]*promFamily{}
	var order [3][]*promFamily // by kind, for output
	add := func(kind int, kindName, statName string, e promEntry) {
		t := tx.Extract(statName)
		name := "envoy_" + sanitizeMetricName(t.Name)
		f := fams[name]
		if f == nil {
			f = &promFamily{name: name, kind: kindName, typ: promType(name, kindName),
				help: "Envoy " + kindName + " " + t.Name + ".", labels: map[string]bool{}}
			fams[name] = f
			order[kind] = append(order[kind], f)
		}
		if f.kind != kindName {
			return // a family of another kind took the name; keep the output valid
		}
		e.labels = renderLabels(t.Tags)
		if f.labels[e.labels] {
			return
		}
		f.labels[e.labels] = true
		f.entries = append(f.entries, e)
	}
	for _, c := range s.Counters() {
		if keep(c.Name()) && (!usedOnly || c.Value() != 0) {
			add(0, "counter", c.Name(), promEntry{value: c.Value()})
		}
	}
	for _, g := range s.Gauges() {
		if keep(g.Name()) && (!usedOnly || g.Value() != 0) {
			add(1, "gauge", g.Name(), promEntry{gauge: g.Value()})
		}
	}
	for _, h := range s.Histograms() {
		if !keep(h.Name()) {
			continue
		}
		snap := snapshot(h)
		if usedOnly && snap.total == 0 {
			continue
		}
		add(2, "histogram", h.Name(), promEntry{hist: &snap})
	}

	for _, list := range order {
		sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
		for _, f := range list {
			writeFamily(bw, f)
		}
	}
	s.mu.Lock()
	process := s.process
	s.mu.Unlock()
	if process {
		writeProcessMetrics(bw, keep)
	}
	return bw.Flush()
}

func writeHeader(bw *bufio.Writer, name, typ, help string) {
	bw.WriteString("# HELP ")
	bw.WriteString(name)
	bw.WriteByte(' ')
	bw.WriteString(help)
	bw.WriteString("\n# TYPE ")
	bw.WriteString(name)
	bw.WriteByte(' ')
	bw.WriteString(typ)
	bw.WriteByte('\n')
}

func writeFamily(bw *bufio.Writer, f *promFamily) {
	sort.Slice(f.entries, func(i, j int) bool { return f.entries[i].labels < f.entries[j].labels })
	writeHeader(bw, f.name, f.typ, f.help)
	for _, e := range f.entries {
		switch f.kind {
		case "counter":
			writeSeries(bw, f.name, e.labels, strconv.FormatUint(e.value, 10))
		case "gauge":
			writeSeries(bw, f.name, e.labels, strconv.FormatInt(e.gauge, 10))
		case "histogram":
			writeHistogram(bw, f, e)
		}
	}
}

func writeHistogram(bw *bufio.Writer, f *promFamily, e promEntry) {
	h := e.hist
	sep := ""
	if e.labels != "" {
		sep = ","
	}
	var cum uint64
	bounds := h.h.Bounds()
	for i, c := range h.counts {
		cum += c
		le := "+Inf"
		if i < len(bounds) {
			le = formatFloat(bounds[i])
		}
		bw.WriteString(f.name)
		bw.WriteString("_bucket{")
		bw.WriteString(e.labels)
		bw.WriteString(sep)
		bw.WriteString(`le="`)
		bw.WriteString(le)
		bw.WriteString(`"} `)
		bw.WriteString(strconv.FormatUint(cum, 10))
		bw.WriteByte('\n')
	}
	writeSeries(bw, f.name+"_sum", e.labels, strconv.FormatUint(h.sum, 10))
	writeSeries(bw, f.name+"_count", e.labels, strconv.FormatUint(cum, 10))
}

func writeSeries(bw *bufio.Writer, name, labels, value string) {
	bw.WriteString(name)
	if labels != "" {
		bw.WriteByte('{')
		bw.WriteString(labels)
		bw.WriteByte('}')
	}
	bw.WriteByte(' ')
	bw.WriteString(value)
	bw.WriteByte('\n')
}

// renderLabels turns tags into label pairs. Label names are sanitized like
// metric names; one that would be invalid or reserved (a leading digit,
// "le", "quantile", a "__" prefix) gets a leading "tag_", and a repeated
// name keeps its first value, so the output always parses.
func renderLabels(tags []Tag) string {
	if len(tags) == 0 {
		return ""
	}
	var b strings.Builder
	var seen []string
	for _, t := range tags {
		name := sanitizeMetricName(t.Name)
		if name == "" || name[0] >= '0' && name[0] <= '9' || name == "le" || name == "quantile" || strings.HasPrefix(name, "__") {
			name = "tag_" + name
		}
		dup := false
		for _, s := range seen {
			if s == name {
				dup = true
			}
		}
		if dup {
			continue
		}
		seen = append(seen, name)
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(t.Value))
		b.WriteByte('"')
	}
	return b.String()
}

func sanitizeMetricName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

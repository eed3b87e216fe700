package stats

import (
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Tag is one name/value pair taken out of a stat name, such as
// envoy.cluster_name="service1" from cluster.service1.upstream_rq_total.
type Tag struct {
	Name  string
	Value string
}

// Tagged is a stat name after tag extraction: Name has the tag values cut
// out (cluster.upstream_rq_total) and Tags holds them in extraction order.
type Tagged struct {
	Name string
	Tags []Tag
}

// tagRule follows Envoy's default tag extractors: capture group 1 is the
// text removed from the name, group 2 (or group 1 when there is no second)
// is the tag value. Every rule is matched against the original name, so
// the rules do not depend on each other's order; the order only decides
// the order of the labels.
type tagRule struct {
	name   string
	prefix string // cheap pre-check before running the regex; "" = none
	substr string // must occur in the name; "" = none
	re     *regexp.Regexp
}

// Envoy writes these with look-aheads, which Go's RE2 lacks; "x(?=\.).*?"
// is spelled "x(?:\..*?)?" here, which accepts the same names.
var defaultTagRules = []tagRule{
	// *_rq(_<code>)
	{name: "envoy.response_code", substr: "_rq_", re: regexp.MustCompile(`_rq(_(\d{3}))$`)},
	// *_rq_(<class>)xx
	{name: "envoy.response_code_class", substr: "_rq_", re: regexp.MustCompile(`_rq_(\d)xx$`)},
	// http.[<prefix>.]user_agent.(<agent>.)<stat>
	{name: "envoy.http_user_agent", prefix: "http.", substr: ".user_agent.", re: regexp.MustCompile(`^http(?:\..*?)?\.user_agent\.((.*?)\.)\w+?$`)},
	// vhost.[<vhost>.]vcluster.(<vcluster>.)<stat>
	{name: "envoy.virtual_cluster", prefix: "vhost.", substr: ".vcluster.", re: regexp.MustCompile(`^vhost(?:\..*?)?\.vcluster\.((.*?)\.)\w+?$`)},
	// listener.[<address>.]ssl.cipher.(<cipher>)
	{name: "envoy.ssl_cipher", prefix: "listener.", substr: ".ssl.cipher.", re: regexp.MustCompile(`^listener(?:\..*?)?\.ssl\.cipher(\.(.*?))$`)},
	// cluster.[<name>.]ssl.ciphers.(<cipher>)
	{name: "cipher_suite", prefix: "cluster.", substr: ".ssl.ciphers.", re: regexp.MustCompile(`^cluster(?:\..*?)?\.ssl\.ciphers(\.(.*?))$`)},
	// tcp.(<prefix>.)<stat>
	{name: "envoy.tcp_prefix", prefix: "tcp.", re: regexp.MustCompile(`^tcp\.((.*?)\.)\w+?$`)},
	// http.[<prefix>.]rds.(<route config>.)<stat>
	{name: "envoy.rds_route_config", prefix: "http.", substr: ".rds.", re: regexp.MustCompile(`^http(?:\..*?)?\.rds\.((.*?)\.)\w+?$`)},
	// cluster.(<name>.)*
	{name: "envoy.cluster_name", prefix: "cluster.", re: regexp.MustCompile(`^cluster\.(([^.]*)\.)`)},
	// http.(<prefix>.)* or listener.[<address>.]http.(<prefix>.)*
	{name: "envoy.http_conn_manager_prefix", substr: "http.", re: regexp.MustCompile(`^(?:listener(?:\..*?)?\.)?http\.((.*?)\.)`)},
	// listener.(<address>.)* where the address is IPv4 or bracketed IPv6
	// with ':' turned into '_'; named listener prefixes get no tag.
	{name: "envoy.listener_address", prefix: "listener.", re: regexp.MustCompile(`^listener\.(((?:[_.0-9]*|[_\[\]a-fA-F0-9]*))\.)`)},
	// vhost.(<name>.)*
	{name: "envoy.virtual_host", prefix: "vhost.", re: regexp.MustCompile(`^vhost\.((.*?)\.)`)},
	// listener_manager.(worker_<id>.)*
	{name: "envoy.worker_id", prefix: "listener_manager.worker_", re: regexp.MustCompile(`^listener_manager\.((worker_\d+)\.)`)},
}

// TagExtractor applies tag extractors (Envoy's defaults, or those of
// stats_config) and remembers the result per name, so a scrape or a sink
// flush only runs regexes for stats it has not seen. It is safe for
// concurrent use; it is meant for admin and sinks, not for the request path.
type TagExtractor struct {
	rules []tagRule
	fixed []Tag // stats_tags fixed_value tags, added to every stat

	mu    sync.Mutex
	cache map[string]Tagged
}

// NewTagExtractor returns an extractor with Envoy's default rules.
func NewTagExtractor() *TagExtractor {
	return &TagExtractor{rules: defaultTagRules, cache: map[string]Tagged{}}
}

var defaultExtractor = NewTagExtractor()

// Extract returns name's tag-extracted form.
func (x *TagExtractor) Extract(name string) Tagged {
	x.mu.Lock()
	t, ok := x.cache[name]
	x.mu.Unlock()
	if ok {
		return t
	}
	t = extractTags(name, x.rules, x.fixed)
	x.mu.Lock()
	x.cache[name] = t
	x.mu.Unlock()
	return t
}

type span struct{ start, end int }

func extractTags(name string, rules []tagRule, fixed []Tag) Tagged {
	var tags []Tag
	var cut []span
outer:
	for i := range rules {
		r := &rules[i]
		// One value per tag name: the first extractor that matches wins.
		for _, t := range tags {
			if t.Name == r.name {
				continue outer
			}
		}
		if r.prefix != "" && !strings.HasPrefix(name, r.prefix) {
			continue
		}
		if r.substr != "" && !strings.Contains(name, r.substr) {
			continue
		}
		m := r.re.FindStringSubmatchIndex(name)
		if m == nil || m[2] < 0 {
			continue
		}
		value := name[m[2]:m[3]]
		if len(m) >= 6 && m[4] >= 0 {
			value = name[m[4]:m[5]]
		}
		if m[3] > m[2] {
			cut = append(cut, span{m[2], m[3]})
		}
		tags = append(tags, Tag{Name: r.name, Value: value})
	}
	for _, f := range fixed {
		if !hasTag(tags, f.Name) {
			tags = append(tags, f)
		}
	}
	if len(cut) == 0 {
		return Tagged{Name: name, Tags: tags}
	}
	// Remove every matched span from the original name; overlapping spans
	// are merged.
	sort.Slice(cut, func(i, j int) bool { return cut[i].start < cut[j].start })
	var b strings.Builder
	pos := 0
	for _, s := range cut {
		if s.start > pos {
			b.WriteString(name[pos:s.start])
		}
		pos = max(pos, s.end)
	}
	b.WriteString(name[pos:])
	return Tagged{Name: b.String(), Tags: tags}
}

func hasTag(tags []Tag, name string) bool {
	for _, t := range tags {
		if t.Name == name {
			return true
		}
	}
	return false
}

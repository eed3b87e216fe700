package stats

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func prefixM(p string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}
}

func regexM(r string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: r}}}
}

func names[T interface{ Name() string }](xs []T) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.Name())
	}
	return out
}

func TestStatsMatcher(t *testing.T) {
	create := []string{
		"cluster.a.upstream_rq_total", "cluster.a.upstream_rq_200", "cluster.b.upstream_rq_total",
		"http.ingress.downstream_rq_total", "server.live",
	}
	tests := []struct {
		name string
		m    *metricsv3.StatsMatcher
		want []string
	}{
		{"none", nil, create},
		{"reject_all false", &metricsv3.StatsMatcher{StatsMatcher: &metricsv3.StatsMatcher_RejectAll{RejectAll: false}}, create},
		{"reject_all", &metricsv3.StatsMatcher{StatsMatcher: &metricsv3.StatsMatcher_RejectAll{RejectAll: true}}, nil},
		{"inclusion", &metricsv3.StatsMatcher{StatsMatcher: &metricsv3.StatsMatcher_InclusionList{InclusionList: &matcherv3.ListStringMatcher{
			Patterns: []*matcherv3.StringMatcher{prefixM("cluster.a."), {MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "SERVER.LIVE"}, IgnoreCase: true}}}}},
			[]string{"cluster.a.upstream_rq_200", "cluster.a.upstream_rq_total", "server.live"}},
		{"exclusion", &metricsv3.StatsMatcher{StatsMatcher: &metricsv3.StatsMatcher_ExclusionList{ExclusionList: &matcherv3.ListStringMatcher{
			Patterns: []*matcherv3.StringMatcher{regexM(`cluster\.[^.]+\.upstream_rq_\d+`), {MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".live"}}}}}},
			[]string{"cluster.a.upstream_rq_total", "cluster.b.upstream_rq_total", "http.ingress.downstream_rq_total"}},
		// safe_regex must match the whole name.
		{"regex is anchored", &metricsv3.StatsMatcher{StatsMatcher: &metricsv3.StatsMatcher_ExclusionList{ExclusionList: &matcherv3.ListStringMatcher{
			Patterns: []*matcherv3.StringMatcher{regexM(`upstream_rq_total`)}}}}, create},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := NewStoreFromConfig(&metricsv3.StatsConfig{StatsMatcher: tc.m})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range create {
				if strings.HasPrefix(n, "server.") {
					s.Gauge(n, NeverImport).Set(1)
					continue
				}
				// A rejected stat still counts for its caller, and the
				// same name gives the same stat.
				c := s.Counter(n)
				c.Inc()
				if s.Counter(n) != c || c.Value() != 1 {
					t.Errorf("%s: not the same working counter", n)
				}
			}
			s.Histogram("cluster.a.upstream_rq_time", Milliseconds).Record(3)
			got := append(names(s.Counters()), names(s.Gauges())...)
			want := append([]string(nil), tc.want...)
			if len(got) == 0 {
				got = nil
			}
			slices.Sort(got)
			slices.Sort(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("listed = %v, want %v", got, want)
			}
			var b bytes.Buffer
			WriteText(&b, s, nil, false)
			for _, n := range create {
				if listed := strings.Contains(b.String(), n+": "); listed != slices.Contains(tc.want, n) {
					t.Errorf("/stats lists %s = %v", n, listed)
				}
			}
		})
	}
}

func TestCustomStatsTags(t *testing.T) {
	cfg := &metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{
		// Named listeners get no default tag; extract theirs.
		{TagName: "listener_name", TagValue: &metricsv3.TagSpecifier_Regex{Regex: `^listener\.((ingress_\w+?)\.)`}},
		{TagName: "region", TagValue: &metricsv3.TagSpecifier_FixedValue{FixedValue: "eu-west"}},
	}}
	s, tx, err := NewStoreFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Counter("listener.ingress_main.downstream_cx_total").Add(4)
	s.Counter("cluster.svc.upstream_rq_503").Add(2)
	var b bytes.Buffer
	if err := WritePrometheus(&b, s, tx, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`envoy_listener_downstream_cx_total{listener_name="ingress_main",region="eu-west"} 4`,
		`envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="svc",region="eu-west"} 2`,
		"process_open_fds ", // NewStoreFromConfig turns on process metrics
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}

func TestTagExtractorFromConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  *metricsv3.StatsConfig
		in   string
		want Tagged
	}{
		{"defaults", nil, "cluster.svc.upstream_rq_total",
			Tagged{"cluster.upstream_rq_total", []Tag{{"envoy.cluster_name", "svc"}}}},
		{"defaults off", &metricsv3.StatsConfig{UseAllDefaultTags: wrapperspb.Bool(false)}, "cluster.svc.upstream_rq_2xx",
			Tagged{"cluster.svc.upstream_rq_2xx", nil}},
		{"one default back on", &metricsv3.StatsConfig{UseAllDefaultTags: wrapperspb.Bool(false),
			StatsTags: []*metricsv3.TagSpecifier{{TagName: "envoy.cluster_name"}}}, "cluster.svc.upstream_rq_2xx",
			Tagged{"cluster.upstream_rq_2xx", []Tag{{"envoy.cluster_name", "svc"}}}},
		{"custom without second group", &metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{
			{TagName: "shard", TagValue: &metricsv3.TagSpecifier_Regex{Regex: `\.(shard\d+)$`}}}}, "redis.cache.shard7",
			Tagged{"redis.cache.", []Tag{{"shard", "shard7"}}}},
		// The default keeps precedence over a custom extractor of its name.
		{"default wins", &metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{
			{TagName: "envoy.cluster_name", TagValue: &metricsv3.TagSpecifier_Regex{Regex: `^cluster\.((\w)\w*\.)`}}}}, "cluster.svc.upstream_rq_total",
			Tagged{"cluster.upstream_rq_total", []Tag{{"envoy.cluster_name", "svc"}}}},
	}
	for _, tc := range tests {
		x, err := NewTagExtractorFromConfig(tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := x.Extract(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Extract(%q) = %+v, want %+v", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestStatsConfigErrors(t *testing.T) {
	re := func(name, r string) *metricsv3.TagSpecifier {
		return &metricsv3.TagSpecifier{TagName: name, TagValue: &metricsv3.TagSpecifier_Regex{Regex: r}}
	}
	tests := []struct {
		cfg  *metricsv3.StatsConfig
		want string
	}{
		{&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{re("a", `^x\.((.*?)\.)`), re("a", `^y\.((.*?)\.)`)}}, `stats_tags[1]: tag name "a" specified twice`},
		{&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{re("a", `^http(?=\.)`)}}, "stats_tags[0].regex: "},
		{&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{re("a", `^http\.`)}}, "needs a capture group"},
		{&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{{TagName: "mine"}}}, "not a default tag name"},
		{&metricsv3.StatsConfig{StatsMatcher: &metricsv3.StatsMatcher{StatsMatcher: &metricsv3.StatsMatcher_InclusionList{InclusionList: &matcherv3.ListStringMatcher{
			Patterns: []*matcherv3.StringMatcher{regexM(`(`)}}}}}, "stats_matcher: inclusion_list.patterns[0]: safe_regex"},
	}
	for _, tc := range tests {
		_, _, err := NewStoreFromConfig(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}

// histogram_bucket_settings: the first matching rule gives the bounds
// (sorted, without repeats), in /stats/prometheus too; others keep Envoy's.
func TestHistogramBucketSettings(t *testing.T) {
	s, tx, err := NewStoreFromConfig(&metricsv3.StatsConfig{HistogramBucketSettings: []*metricsv3.HistogramBucketSettings{
		{Match: prefixM("cluster.a."), Buckets: []float64{100, 10, 1000, 10}},
		{Match: prefixM("cluster."), Buckets: []float64{5}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := s.Histogram("cluster.a.upstream_cx_connect_ms", Milliseconds)
	if !slices.Equal(a.Bounds(), []float64{10, 100, 1000}) {
		t.Errorf("cluster.a bounds = %v", a.Bounds())
	}
	if b := s.Histogram("cluster.b.upstream_rq_time", Milliseconds); !slices.Equal(b.Bounds(), []float64{5}) {
		t.Errorf("cluster.b bounds = %v", b.Bounds())
	}
	if h := s.Histogram("http.in.downstream_rq_time", Milliseconds); !slices.Equal(h.Bounds(), DefaultBuckets) {
		t.Errorf("default bounds = %v", h.Bounds())
	}
	a.Record(50)
	var b bytes.Buffer
	if err := WritePrometheus(&b, s, tx, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="10"} 0`,
		`envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="100"} 1`,
		`envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="+Inf"} 1`,
		`envoy_cluster_upstream_cx_connect_ms_sum{envoy_cluster_name="a"} 50`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("prometheus output lacks %s", want)
		}
	}
	if _, _, err := NewStoreFromConfig(&metricsv3.StatsConfig{HistogramBucketSettings: []*metricsv3.HistogramBucketSettings{
		{Match: regexM("("), Buckets: []float64{1}}}}); err == nil || !strings.Contains(err.Error(), "histogram_bucket_settings[0].match") {
		t.Errorf("bad matcher: %v", err)
	}
}

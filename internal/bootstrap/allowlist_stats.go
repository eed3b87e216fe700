package bootstrap

import (
	// StatsdSink and DogStatsdSink, the stats sinks' typed_config.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
)

const (
	typeStatsdSink    = "envoy.config.metrics.v3.StatsdSink"
	typeDogStatsdSink = "envoy.config.metrics.v3.DogStatsdSink"
)

func init() {
	extendFields("envoy.config.bootstrap.v3.Bootstrap",
		"stats_sinks",
		field{Name: "stats_flush_interval", Note: "default 5 s"},
		"stats_config")
	addMessages("Stats",
		"Stats sinks and stats configuration. `/stats/prometheus` keeps Envoy's series names and passes promlint: "+
			"counters whose Envoy name lacks `_total` are declared `untyped`, and the few stats named with a non-base "+
			"unit (`_ms`, `_us`, `days`) are exported in seconds (`envoy_cluster_upstream_cx_connect_ms` → "+
			"`envoy_cluster_upstream_cx_connect_seconds`); `/stats` and the sinks keep Envoy's names and units. "+
			"Histograms are flushed to statsd as a per-interval summary: one `|ms` line per bucket that received "+
			"samples, with a sample rate standing for their count.",
		message{"envoy.config.metrics.v3.StatsSink", fs("name", field{Name: "typed_config", Types: []string{typeStatsdSink, typeDogStatsdSink}})},
		message{typeStatsdSink, fs(
			field{Name: "address", Note: "UDP; one stat per datagram"},
			field{Name: "tcp_cluster_name", Note: "a static cluster; a flush that cannot be written in 2 s is dropped (`statsd.cx_overflow`)"},
			field{Name: "prefix", Note: "default envoy"},
			"scale_histogram_units_to_milliseconds")},
		message{typeDogStatsdSink, fs(
			field{Name: "address", Note: "UDP"},
			field{Name: "prefix", Note: "default envoy"},
			field{Name: "max_bytes_per_datagram", Note: "unset: one stat per datagram"},
			"scale_histogram_units_to_milliseconds")},
		message{"envoy.config.metrics.v3.StatsConfig", fs(
			"stats_tags",
			field{Name: "use_all_default_tags", Note: "default true"},
			field{Name: "stats_matcher", Note: "matched against the full stat name when a stat is created"})},
		message{"envoy.config.metrics.v3.TagSpecifier", fs("tag_name",
			field{Name: "regex", Note: "Go RE2 syntax: no look-arounds"},
			"fixed_value")},
		message{"envoy.config.metrics.v3.StatsMatcher", fs("reject_all", "exclusion_list", "inclusion_list")},
		message{"envoy.type.matcher.v3.ListStringMatcher", fs("patterns")},
	)
}

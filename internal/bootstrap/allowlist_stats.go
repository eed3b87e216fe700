package bootstrap

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	// StatsdSink and DogStatsdSink, the stats sinks' typed_config.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
)

const (
	typeStatsdSink    = "envoy.config.metrics.v3.StatsdSink"
	typeDogStatsdSink = "envoy.config.metrics.v3.DogStatsdSink"
)

func init() {
	// A statsd sink's address may say UDP (it is UDP either way); nothing
	// else Legate binds or dials speaks UDP.
	extendEnum("envoy.config.core.v3.SocketAddress", "protocol", "UDP")
	udp := corev3.SocketAddress_UDP.Number()
	enumWhere["envoy.config.core.v3.SocketAddress.protocol"] = func(path string, v protoreflect.EnumNumber) string {
		if v == udp && !strings.HasPrefix(path, "stats_sinks[") {
			return "UDP is not supported here; only a stats sink's address is UDP"
		}
		return ""
	}
	extendFields("envoy.config.bootstrap.v3.Bootstrap",
		"stats_sinks",
		field{Name: "stats_flush_interval", Note: "default 5 s"},
		"stats_config",
		field{Name: "deferred_stat_options", Note: "accepted: Envoy's saving of memory by creating clusters' traffic stats on first use; Legate's are created with the cluster, so /stats lists them before first use"})
	addMessages("Stats",
		"Stats sinks and stats configuration. `/stats/prometheus` keeps Envoy's series names and units exactly "+
			"(`envoy_cluster_upstream_cx_connect_ms_bucket`, bounds in milliseconds), so dashboards built for Envoy work; "+
			"counters whose Envoy name lacks `_total` are declared `untyped`, which promlint wants of them. "+
			"Histograms are flushed to statsd as a per-interval summary: one `|ms` line per bucket that received "+
			"samples, with a sample rate standing for their count.",
		message{"envoy.config.metrics.v3.StatsSink", fs("name", field{Name: "typed_config", Types: []string{typeStatsdSink, typeDogStatsdSink}})},
		message{typeStatsdSink, fs(
			field{Name: "address", Note: "UDP (`protocol: UDP` may say so); one stat per datagram"},
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
			field{Name: "stats_matcher", Note: "matched against the full stat name when a stat is created"},
			field{Name: "histogram_bucket_settings", Note: "the first rule matching a histogram's full name gives its bounds (sorted, repeats dropped), in every output"})},
		message{"envoy.config.metrics.v3.HistogramBucketSettings", fs("match", "buckets")},
		message{"envoy.config.bootstrap.v3.Bootstrap.DeferredStatOptions", fs("enable_deferred_creation_stats")},
		message{"envoy.config.metrics.v3.TagSpecifier", fs("tag_name",
			field{Name: "regex", Note: "Go RE2 syntax: no look-arounds"},
			"fixed_value")},
		message{"envoy.config.metrics.v3.StatsMatcher", fs("reject_all", "exclusion_list", "inclusion_list")},
		message{"envoy.type.matcher.v3.ListStringMatcher", fs("patterns")},
	)
}

package bootstrap

// The envoy.stat_sinks.metrics_service sink (internal/stats/sink/metricsservice.go).

const typeMetricsServiceSink = "envoy.config.metrics.v3.MetricsServiceConfig"

func init() {
	extendTypes("envoy.config.metrics.v3.StatsSink", "typed_config", typeMetricsServiceSink)
	addMessages("Stats", "",
		message{typeMetricsServiceSink, fs(
			field{Name: "grpc_service", Note: "StreamMetrics (envoy.service.metrics.v3); the node goes on each stream's first message"},
			field{Name: "transport_api_version", Note: "V3 (or unset)"},
			field{Name: "report_counters_as_deltas", Note: "default false: counters are cumulative"},
			field{Name: "emit_tags_as_labels", Note: "tag-extracted names, with the tags as labels"},
			field{Name: "histogram_emit_mode", Note: "histograms are cumulative; summary quantiles are estimated from the buckets"},
			field{Name: "batch_size", Note: "families per message; 0: one message per flush"})},
	)
}

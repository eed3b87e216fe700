package bootstrap

import (
	"strings"
	"testing"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
)

func TestStatsConfigAccepted(t *testing.T) {
	const cfg = `
stats_flush_interval: 2s
stats_sinks:
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: {socket_address: {address: 127.0.0.1, port_value: 8125, protocol: UDP}}
    prefix: legate
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    tcp_cluster_name: statsd
- name: envoy.stat_sinks.dog_statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: {socket_address: {address: 127.0.0.1, port_value: 8126}}
    max_bytes_per_datagram: 1400
deferred_stat_options: {enable_deferred_creation_stats: true}
stats_config:
  histogram_bucket_settings:
  - match: {prefix: cluster.}
    buckets: [1, 10, 100]
  use_all_default_tags: false
  stats_tags:
  - tag_name: envoy.cluster_name
  - tag_name: team
    fixed_value: edge
  - tag_name: method
    regex: '^http\.\w+\.rq_((\w+)\.)'
  stats_matcher:
    exclusion_list:
      patterns:
      - prefix: vhost.
      - safe_regex: {regex: '.*_rq_\d{3}$'}
`
	bs, err := Load(Options{ConfigYAML: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs.GetStatsSinks()) != 3 || bs.GetStatsFlushInterval().AsDuration().Seconds() != 2 {
		t.Fatalf("sinks = %v", bs.GetStatsSinks())
	}
	var dog metricsv3.DogStatsdSink
	if err := bs.GetStatsSinks()[2].GetTypedConfig().UnmarshalTo(&dog); err != nil || dog.GetMaxBytesPerDatagram().GetValue() != 1400 {
		t.Errorf("dog_statsd = %v, %v", &dog, err)
	}
	if n := len(bs.GetStatsConfig().GetStatsMatcher().GetExclusionList().GetPatterns()); n != 2 {
		t.Errorf("patterns = %d", n)
	}
}

func TestStatsConfigRejectsUnsupported(t *testing.T) {
	tests := []struct{ cfg, want string }{
		{`stats_config: {histogram_bucket_settings: [{match: {prefix: x}, bins: 20}]}`, "histogram_bucket_settings[0].bins: field is not supported"},
		{`static_resources: {listeners: [{address: {socket_address: {address: 127.0.0.1, port_value: 1, protocol: UDP}}}]}`,
			"static_resources.listeners[0].address.socket_address.protocol: UDP is not supported here; only a stats sink's address is UDP"},
		{`stats_flush_on_admin: true`, "stats_flush_on_admin"},
		{`
stats_sinks:
- name: envoy.stat_sinks.metrics_service
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig
    grpc_service: {envoy_grpc: {cluster_name: x}, retry_policy: {num_retries: 3}}`, "grpc_service.retry_policy: field is not supported"},
	}
	for _, tc := range tests {
		_, err := Load(Options{ConfigYAML: tc.cfg})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want mention of %s", tc.cfg, err, tc.want)
		}
	}
}

package stats

import (
	"reflect"
	"testing"
)

func TestTagExtraction(t *testing.T) {
	tests := []struct {
		in   string
		name string
		tags []Tag
	}{
		{"server.live", "server.live", nil},
		{"cluster_manager.cluster_added", "cluster_manager.cluster_added", nil},
		{"cluster.service1.upstream_rq_total", "cluster.upstream_rq_total", []Tag{{"envoy.cluster_name", "service1"}}},
		{"cluster.service1.upstream_rq_200", "cluster.upstream_rq", []Tag{{"envoy.response_code", "200"}, {"envoy.cluster_name", "service1"}}},
		{"cluster.service1.upstream_rq_5xx", "cluster.upstream_rq_xx", []Tag{{"envoy.response_code_class", "5"}, {"envoy.cluster_name", "service1"}}},
		{"cluster.service1.upstream_rq_time", "cluster.upstream_rq_time", []Tag{{"envoy.cluster_name", "service1"}}},
		{"http.ingress_http.downstream_rq_2xx", "http.downstream_rq_xx", []Tag{{"envoy.response_code_class", "2"}, {"envoy.http_conn_manager_prefix", "ingress_http"}}},
		{"http.admin.downstream_cx_active", "http.downstream_cx_active", []Tag{{"envoy.http_conn_manager_prefix", "admin"}}},
		{"listener.0.0.0.0_8080.downstream_cx_total", "listener.downstream_cx_total", []Tag{{"envoy.listener_address", "0.0.0.0_8080"}}},
		{"listener.[__]_8443.downstream_cx_active", "listener.downstream_cx_active", []Tag{{"envoy.listener_address", "[__]_8443"}}},
		{"listener.admin.downstream_cx_total", "listener.admin.downstream_cx_total", nil},
		{"listener.0.0.0.0_8080.http.ingress_http.downstream_rq_4xx", "listener.http.downstream_rq_xx", []Tag{
			{"envoy.response_code_class", "4"}, {"envoy.http_conn_manager_prefix", "ingress_http"}, {"envoy.listener_address", "0.0.0.0_8080"}}},
		{"listener.127.0.0.1_10000.ssl.cipher.ECDHE-RSA-AES128-GCM-SHA256", "listener.ssl.cipher", []Tag{
			{"envoy.ssl_cipher", "ECDHE-RSA-AES128-GCM-SHA256"}, {"envoy.listener_address", "127.0.0.1_10000"}}},
		{"cluster.up.ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256", "cluster.ssl.ciphers", []Tag{
			{"cipher_suite", "ECDHE-RSA-AES128-GCM-SHA256"}, {"envoy.cluster_name", "up"}}},
		{"vhost.backend.vcluster.other.upstream_rq_time", "vhost.vcluster.upstream_rq_time", []Tag{
			{"envoy.virtual_cluster", "other"}, {"envoy.virtual_host", "backend"}}},
		{"tcp.egress.downstream_cx_total", "tcp.downstream_cx_total", []Tag{{"envoy.tcp_prefix", "egress"}}},
		{"http.ingress_http.rds.local_route.config_reload", "http.rds.config_reload", []Tag{
			{"envoy.rds_route_config", "local_route"}, {"envoy.http_conn_manager_prefix", "ingress_http"}}},
		{"listener_manager.worker_1.dispatcher.loop_duration_us", "listener_manager.dispatcher.loop_duration_us", []Tag{{"envoy.worker_id", "worker_1"}}},
	}
	x := NewTagExtractor()
	for _, tc := range tests {
		for range 2 { // the second call comes from the cache
			got := x.Extract(tc.in)
			if got.Name != tc.name || !reflect.DeepEqual(got.Tags, tc.tags) {
				t.Errorf("Extract(%q) = %q %v; want %q %v", tc.in, got.Name, got.Tags, tc.name, tc.tags)
			}
		}
	}
}

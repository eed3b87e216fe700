package cluster

import (
	"bufio"
	"fmt"
	"io"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Envoy's default circuit-breaker thresholds. Legate does not accept
// circuit_breakers config yet, so every cluster reports these for both
// priorities.
const (
	defaultMaxConnections     = 1024
	defaultMaxPendingRequests = 1024
	defaultMaxRequests        = 1024
	defaultMaxRetries         = 3
)

// hostStat is one per-host stat as /clusters lists it.
type hostStat struct {
	name  string
	value uint64
	gauge bool
}

// hostStats returns a host's stats in Envoy's order: counters then gauges,
// each in declaration order (the JSON form keeps this order; the text form
// sorts by name).
func hostStats(h *Host) []hostStat {
	return []hostStat{
		{"cx_connect_fail", h.CxConnectFail.Load(), false},
		{"cx_total", h.CxTotal.Load(), false},
		{"rq_error", h.RqError.Load(), false},
		{"rq_success", h.RqSuccess.Load(), false},
		{"rq_timeout", h.RqTimeout.Load(), false},
		{"rq_total", h.RqTotal.Load(), false},
		{"cx_active", uint64(max(h.CxActive.Load(), 0)), true},
		{"rq_active", uint64(max(h.RqActive.Load(), 0)), true},
	}
}

// textOrder is hostStats' indices sorted by stat name, as Envoy's text
// output sorts them.
var textOrder = [...]int{6, 0, 1, 7, 2, 3, 4, 5}

// WriteText writes /clusters in Envoy's text form:
// "<cluster>::<host:port>::<stat>::<value>" lines, clusters by name.
func (m *Manager) WriteText(w io.Writer) {
	bw := bufio.NewWriter(w)
	for _, c := range m.Clusters() {
		n := c.Name
		fmt.Fprintf(bw, "%s::observability_name::%s\n", n, c.ObservabilityName)
		for _, prio := range []string{"default", "high"} {
			fmt.Fprintf(bw, "%s::%s_priority::max_connections::%d\n", n, prio, defaultMaxConnections)
			fmt.Fprintf(bw, "%s::%s_priority::max_pending_requests::%d\n", n, prio, defaultMaxPendingRequests)
			fmt.Fprintf(bw, "%s::%s_priority::max_requests::%d\n", n, prio, defaultMaxRequests)
			fmt.Fprintf(bw, "%s::%s_priority::max_retries::%d\n", n, prio, defaultMaxRetries)
		}
		fmt.Fprintf(bw, "%s::added_via_api::%t\n", n, !c.static)
		for _, h := range c.Hosts() {
			a := h.Address
			st := hostStats(h)
			for _, i := range textOrder {
				fmt.Fprintf(bw, "%s::%s::%s::%d\n", n, a, st[i].name, st[i].value)
			}
			fmt.Fprintf(bw, "%s::%s::hostname::%s\n", n, a, h.Hostname)
			fmt.Fprintf(bw, "%s::%s::health_flags::%s\n", n, a, h.HealthFlags())
			fmt.Fprintf(bw, "%s::%s::weight::%d\n", n, a, h.Weight)
			fmt.Fprintf(bw, "%s::%s::region::\n", n, a)
			fmt.Fprintf(bw, "%s::%s::zone::\n", n, a)
			fmt.Fprintf(bw, "%s::%s::sub_zone::\n", n, a)
			fmt.Fprintf(bw, "%s::%s::canary::false\n", n, a)
			fmt.Fprintf(bw, "%s::%s::priority::0\n", n, a)
			// No outlier detection: Envoy prints -1 for "no data".
			fmt.Fprintf(bw, "%s::%s::success_rate::-1\n", n, a)
			fmt.Fprintf(bw, "%s::%s::local_origin_success_rate::-1\n", n, a)
		}
	}
	_ = bw.Flush() // a failed admin write has no one to report to
}

// ClustersProto returns /clusters as envoy.admin.v3.Clusters.
func (m *Manager) ClustersProto() *adminv3.Clusters {
	out := &adminv3.Clusters{}
	for _, c := range m.Clusters() {
		cs := &adminv3.ClusterStatus{
			Name:              c.Name,
			ObservabilityName: c.ObservabilityName,
			AddedViaApi:       !c.static,
			CircuitBreakers:   &clusterv3.CircuitBreakers{},
		}
		for _, prio := range []corev3.RoutingPriority{corev3.RoutingPriority_DEFAULT, corev3.RoutingPriority_HIGH} {
			cs.CircuitBreakers.Thresholds = append(cs.CircuitBreakers.Thresholds, &clusterv3.CircuitBreakers_Thresholds{
				Priority:           prio,
				MaxConnections:     wrapperspb.UInt32(defaultMaxConnections),
				MaxPendingRequests: wrapperspb.UInt32(defaultMaxPendingRequests),
				MaxRequests:        wrapperspb.UInt32(defaultMaxRequests),
				MaxRetries:         wrapperspb.UInt32(defaultMaxRetries),
			})
		}
		for _, h := range c.Hosts() {
			hs := &adminv3.HostStatus{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address:       h.AddrPort.Addr().String(),
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(h.AddrPort.Port())},
				}}},
				Hostname:     h.Hostname,
				Locality:     &corev3.Locality{},
				HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: healthStatus(h)},
				Weight:       h.Weight,
			}
			for _, s := range hostStats(h) {
				t := adminv3.SimpleMetric_COUNTER
				if s.gauge {
					t = adminv3.SimpleMetric_GAUGE
				}
				hs.Stats = append(hs.Stats, &adminv3.SimpleMetric{Type: t, Value: s.value, Name: s.name})
			}
			cs.HostStatuses = append(cs.HostStatuses, hs)
		}
		out.ClusterStatuses = append(out.ClusterStatuses, cs)
	}
	return out
}

// WriteJSON writes /clusters?format=json: envoy.admin.v3.Clusters with
// proto field names, pretty-printed, as Envoy renders it.
func (m *Manager) WriteJSON(w io.Writer) {
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true, Indent: " "}.Marshal(m.ClustersProto())
	if err != nil {
		// Only possible for invalid UTF-8 in names, which config rejects.
		b = []byte(`{}`)
	}
	b = append(b, '\n')
	_, _ = w.Write(b)
}

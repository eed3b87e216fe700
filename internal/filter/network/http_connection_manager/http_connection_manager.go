// Package http_connection_manager registers the HTTP connection manager as a
// network filter.
package http_connection_manager

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/http/hcm"
	"github.com/legate-proxy/legate/internal/networkfilter"
)

func init() {
	networkfilter.Registry.Register(&hcmv3.HttpConnectionManager{}, New)
}

// New compiles the connection manager config.
func New(cfg proto.Message, fc *networkfilter.FactoryContext) (networkfilter.Filter, error) {
	return hcm.New(cfg.(*hcmv3.HttpConnectionManager), hcm.Deps{
		Clusters: fc.Clusters,
		Stats:    fc.Stats,
		Logger:   fc.Logger,
		// A nil HealthFailed (tests) means never failing.
		HealthFailed:   fc.HealthFailed,
		Runtime:        fc.Runtime,
		AccessLogFiles: fc.AccessLogFiles,
		Spans:          fc.Spans,
		NodeID:         fc.NodeID,
		ServiceCluster: fc.ClusterName,
		AtShutdown:     fc.AtShutdown,
		RDS:            fc.Routes,
		XDS:            fc.XDS,
		Overload:       fc.Overload,
		Outbound:       fc.TrafficDirection == corev3.TrafficDirection_OUTBOUND,
	})
}

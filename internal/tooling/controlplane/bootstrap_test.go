package controlplane_test

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/legate-proxy/legate/internal/bootstrap"
	"github.com/legate-proxy/legate/internal/tooling/controlplane"
)

// TestBootstrap: every shape loads as a bootstrap whose CDS and LDS come
// from xds_cluster, over ADS or per type, SotW or delta.
func TestBootstrap(t *testing.T) {
	for _, o := range []controlplane.BootstrapOptions{
		{NodeID: "n", NodeCluster: "c", AdminPort: 9901, XDSPort: 18000},
		{NodeID: "n", NodeCluster: "c", AdminPort: 9901, XDSPort: 18000, Delta: true},
		{NodeID: "n", NodeCluster: "c", AdminPort: 9901, XDSPort: 18000, PerType: true},
		{NodeID: "n", NodeCluster: "c", AdminPort: 9901, XDSPort: 18000, PerType: true, Delta: true},
	} {
		bs, err := bootstrap.Load(bootstrap.Options{ConfigYAML: controlplane.Bootstrap(o)})
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		want := core.ApiConfigSource_GRPC
		if o.Delta {
			want = core.ApiConfigSource_DELTA_GRPC
		}
		dyn := bs.GetDynamicResources()
		api := dyn.GetAdsConfig()
		if o.PerType {
			api = dyn.GetCdsConfig().GetApiConfigSource()
			if dyn.GetAdsConfig() != nil || dyn.GetLdsConfig().GetApiConfigSource().GetApiType() != want {
				t.Errorf("%+v: LDS source %v", o, dyn.GetLdsConfig())
			}
		} else if dyn.GetCdsConfig().GetAds() == nil || dyn.GetLdsConfig().GetAds() == nil {
			t.Errorf("%+v: CDS/LDS not over ADS: %v", o, dyn)
		}
		if api.GetApiType() != want || api.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != "xds_cluster" {
			t.Errorf("%+v: xDS source %v", o, api)
		}
		sa := bs.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if bs.GetNode().GetId() != "n" || sa.GetPortValue() != 18000 || bs.GetAdmin().GetAddress().GetSocketAddress().GetPortValue() != 9901 {
			t.Errorf("%+v: node %v, xds_cluster %v, admin %v", o, bs.GetNode(), sa, bs.GetAdmin())
		}
	}
}

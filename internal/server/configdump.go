package server

import (
	"fmt"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ConfigDump renders the running configuration in the shape of Envoy's
// envoy.admin.v3.ConfigDump: bootstrap, clusters, listeners and routes, in
// that order, so tools that read Envoy's dump read Legate's.
func (s *Server) ConfigDump(includeEDS bool) (*adminv3.ConfigDump, error) {
	bs := s.opts.Bootstrap
	loaded := timestamppb.New(s.start)
	var dumps []proto.Message
	dumps = append(dumps, &adminv3.BootstrapConfigDump{Bootstrap: bs, LastUpdated: loaded})

	cd := &adminv3.ClustersConfigDump{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		a, err := anypb.New(c)
		if err != nil {
			return nil, err
		}
		cd.StaticClusters = append(cd.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: a, LastUpdated: loaded})
	}
	dumps = append(dumps, cd)

	ld := &adminv3.ListenersConfigDump{}
	rd := &adminv3.RoutesConfigDump{}
	for _, l := range bs.GetStaticResources().GetListeners() {
		a, err := anypb.New(l)
		if err != nil {
			return nil, err
		}
		ld.StaticListeners = append(ld.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: a, LastUpdated: loaded})
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&hcm) != nil || hcm.GetRouteConfig() == nil {
					continue
				}
				ra, err := anypb.New(hcm.GetRouteConfig())
				if err != nil {
					return nil, err
				}
				rd.StaticRouteConfigs = append(rd.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{RouteConfig: ra, LastUpdated: loaded})
			}
		}
	}
	dumps = append(dumps, ld, rd)

	out := &adminv3.ConfigDump{}
	for _, d := range dumps {
		a, err := anypb.New(d)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		out.Configs = append(out.Configs, a)
	}
	return out, nil
}

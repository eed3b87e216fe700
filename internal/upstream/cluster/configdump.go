package cluster

import (
	"sort"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ConfigDump is /config_dump's ClustersConfigDump: static clusters, and
// dynamic ones active and warming, each with the version_info it came
// with and when it was applied; version_info is the last CDS version.
func (m *Manager) ConfigDump() *adminv3.ClustersConfigDump {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &adminv3.ClustersConfigDump{VersionInfo: m.cdsVersion}
	for _, name := range m.sortedNamesLocked() {
		e := m.entries[name]
		if e.static {
			out.StaticClusters = append(out.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{
				Cluster: mustAny(e.active.pb), LastUpdated: timestamppb.New(e.active.lastUpdated),
			})
			continue
		}
		if c := e.active; c != nil {
			out.DynamicActiveClusters = append(out.DynamicActiveClusters, dynamicCluster(c))
		}
		if c := e.warming; c != nil {
			out.DynamicWarmingClusters = append(out.DynamicWarmingClusters, dynamicCluster(c))
		}
	}
	return out
}

func dynamicCluster(c *Cluster) *adminv3.ClustersConfigDump_DynamicCluster {
	return &adminv3.ClustersConfigDump_DynamicCluster{
		VersionInfo: c.version, Cluster: mustAny(c.pb), LastUpdated: timestamppb.New(c.lastUpdated),
	}
}

// EndpointsDump is /config_dump?include_eds's EndpointsConfigDump: each
// active cluster's assignment — the configured load_assignment for
// clusters that have one, the last accepted ClusterLoadAssignment for
// EDS clusters (those that have received one).
func (m *Manager) EndpointsDump() *adminv3.EndpointsConfigDump {
	out := &adminv3.EndpointsConfigDump{}
	for _, c := range m.Clusters() {
		if c.Type != EDS {
			cla := proto.Clone(c.pb.GetLoadAssignment()).(*endpointv3.ClusterLoadAssignment)
			if cla == nil {
				cla = &endpointv3.ClusterLoadAssignment{}
			}
			cla.ClusterName = c.Name
			out.StaticEndpointConfigs = append(out.StaticEndpointConfigs, &adminv3.EndpointsConfigDump_StaticEndpointConfig{
				EndpointConfig: mustAny(cla), LastUpdated: timestamppb.New(c.lastUpdated),
			})
			continue
		}
		c.mu.Lock()
		cla, ver, at := c.cla, c.claVer, c.claAt
		c.mu.Unlock()
		if cla == nil {
			continue
		}
		out.DynamicEndpointConfigs = append(out.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
			VersionInfo: ver, EndpointConfig: mustAny(cla), LastUpdated: timestamppb.New(at),
		})
	}
	return out
}

func (m *Manager) sortedNamesLocked() []string {
	names := make([]string, 0, len(m.entries))
	for n := range m.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// mustAny packs a decoded, valid message; that cannot fail.
func mustAny(msg proto.Message) *anypb.Any {
	a, err := anypb.New(msg)
	if err != nil {
		panic(err)
	}
	return a
}

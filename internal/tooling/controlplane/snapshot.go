package controlplane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// Contents are the resources of one snapshot, per served type, sorted by
// name, plus which EDS services the registry backs.
type Contents struct {
	Resources map[resource.Type][]types.Resource
	// Registry lists the load assignments that come from the registry.
	Registry []string
}

// Names returns the resource names of type t, sorted.
func (c *Contents) Names(t resource.Type) []string {
	names := make([]string, 0, len(c.Resources[t]))
	for _, r := range c.Resources[t] {
		names = append(names, cache.GetResourceName(r))
	}
	return names
}

// Build combines the resource set with the registry into snapshot contents
// and checks them: no duplicate names; every cluster a route or tcp_proxy
// names exists; every RDS route_config_name exists; every load assignment in
// the set belongs to an EDS cluster. An EDS cluster whose service has no
// load assignment in the set gets the registry service of that name (empty
// until instances register), so clusters can be declared before their
// instances exist. Finally go-control-plane's Snapshot.Consistent must hold.
func Build(set *ResourceSet, reg *Registry) (*Contents, error) {
	var errs []error
	byName := map[resource.Type]map[string]Resource{}
	for _, t := range servedTypes {
		byName[t] = map[string]Resource{}
		for _, r := range set.ByType[t] {
			if prev, dup := byName[t][r.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: duplicate name %q (also %s)", r.Origin, r.Name, prev.Origin))
				continue
			}
			byName[t][r.Name] = r
		}
	}
	clusters, routes := byName[resource.ClusterType], byName[resource.RouteType]

	// EDS services: the file's load assignment, else the registry's.
	out := &Contents{Resources: map[resource.Type][]types.Resource{}}
	edsUsers := map[string]string{} // service -> first cluster using it
	for _, name := range sortedKeys(clusters) {
		c := clusters[name].Message.(*cluster.Cluster)
		if c.GetType() != cluster.Cluster_EDS {
			continue
		}
		svc := c.GetEdsClusterConfig().GetServiceName()
		if svc == "" {
			svc = c.GetName()
		}
		if _, seen := edsUsers[svc]; !seen {
			edsUsers[svc] = name
		}
	}
	for _, name := range sortedKeys(byName[resource.EndpointType]) {
		if _, used := edsUsers[name]; !used {
			r := byName[resource.EndpointType][name]
			errs = append(errs, fmt.Errorf("%s: no EDS cluster uses load assignment %q (a cluster's eds_cluster_config.service_name, or its name, must match cluster_name)", r.Origin, name))
		}
	}

	// References from routes, inline or RDS, and from tcp_proxy.
	checkRoutes := func(rc *route.RouteConfiguration, origin, path string) {
		for i, vh := range rc.GetVirtualHosts() {
			for j, rt := range vh.GetRoutes() {
				p := fmt.Sprintf("%svirtual_hosts[%d].routes[%d].route", path, i, j)
				a := rt.GetRoute()
				if a == nil {
					continue
				}
				if c := a.GetCluster(); c != "" {
					if _, ok := clusters[c]; !ok {
						errs = append(errs, fmt.Errorf("%s: %s.cluster: unknown cluster %q", origin, p, c))
					}
				}
				for k, wc := range a.GetWeightedClusters().GetClusters() {
					if _, ok := clusters[wc.GetName()]; !ok {
						errs = append(errs, fmt.Errorf("%s: %s.weighted_clusters.clusters[%d].name: unknown cluster %q", origin, p, k, wc.GetName()))
					}
				}
			}
		}
	}
	for _, name := range sortedKeys(routes) {
		checkRoutes(routes[name].Message.(*route.RouteConfiguration), routes[name].Origin, "")
	}
	for _, name := range sortedKeys(byName[resource.ListenerType]) {
		r := byName[resource.ListenerType][name]
		l := r.Message.(*listener.Listener)
		chains := slices.Clone(l.GetFilterChains())
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains, l.GetDefaultFilterChain())
		}
		for i, fc := range chains {
			for j, f := range fc.GetFilters() {
				path := fmt.Sprintf("filter_chains[%d].filters[%d].typed_config.", i, j)
				if f.GetTypedConfig() == nil {
					continue
				}
				m, err := f.GetTypedConfig().UnmarshalNew()
				if err != nil {
					continue // validated at decode time
				}
				switch tc := m.(type) {
				case *hcm.HttpConnectionManager:
					if rc := tc.GetRouteConfig(); rc != nil {
						checkRoutes(rc, r.Origin, path+"route_config.")
					}
					if rds := tc.GetRds(); rds != nil {
						if _, ok := routes[rds.GetRouteConfigName()]; !ok {
							errs = append(errs, fmt.Errorf("%s: %srds.route_config_name: unknown route configuration %q", r.Origin, path, rds.GetRouteConfigName()))
						}
					}
				case *tcpproxy.TcpProxy:
					if c := tc.GetCluster(); c != "" {
						if _, ok := clusters[c]; !ok {
							errs = append(errs, fmt.Errorf("%s: %scluster: unknown cluster %q", r.Origin, path, c))
						}
					}
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	for _, t := range servedTypes {
		if t == resource.EndpointType {
			continue
		}
		for _, name := range sortedKeys(byName[t]) {
			out.Resources[t] = append(out.Resources[t], byName[t][name].Message)
		}
	}
	for _, svc := range sortedKeys(edsUsers) {
		if r, ok := byName[resource.EndpointType][svc]; ok {
			out.Resources[resource.EndpointType] = append(out.Resources[resource.EndpointType], r.Message)
			continue
		}
		out.Resources[resource.EndpointType] = append(out.Resources[resource.EndpointType], reg.LoadAssignment(svc))
		out.Registry = append(out.Registry, svc)
	}

	snap, err := cache.NewSnapshot("check", out.Resources)
	if err != nil {
		return nil, err
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("snapshot is not consistent: %w", err)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// typeHash is a short digest of one type's resources (already sorted by
// name), so an unchanged type keeps its version across snapshots.
func typeHash(rs []types.Resource) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, r := range rs {
		b, err := opts.Marshal(r)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:8], nil
}

// versioner assigns snapshot versions: "N-hash", N counting accepted
// changes. Each type keeps the version of the snapshot in which its content
// last changed, so a proxy is sent only the types that changed.
type versioner struct {
	counter  uint64
	overall  string
	perType  map[resource.Type]string
	typeHash map[resource.Type]string
}

// next returns the snapshot for c, or nil when nothing changed.
func (v *versioner) next(c *Contents) (*cache.Snapshot, string, error) {
	hashes := map[resource.Type]string{}
	var all strings.Builder
	for _, t := range servedTypes {
		h, err := typeHash(c.Resources[t])
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", shortNames[t], err)
		}
		hashes[t] = h
		all.WriteString(h)
	}
	sum := sha256.Sum256([]byte(all.String()))
	overall := hex.EncodeToString(sum[:])[:8]
	if v.perType != nil && overall == v.overall {
		return nil, "", nil
	}
	v.counter++
	version := fmt.Sprintf("%d-%s", v.counter, overall)
	if v.perType == nil {
		v.perType, v.typeHash = map[resource.Type]string{}, map[resource.Type]string{}
	}
	snap := &cache.Snapshot{}
	for _, t := range servedTypes {
		if v.typeHash[t] != hashes[t] {
			v.typeHash[t] = hashes[t]
			v.perType[t] = version
		}
		snap.Resources[cache.GetResponseType(t)] = cache.NewResources(v.perType[t], c.Resources[t])
	}
	v.overall = overall
	return snap, version, nil
}

// protoEqual is proto.Equal, named for the registry's use.
func protoEqual(a, b proto.Message) bool { return proto.Equal(a, b) }

package server

import (
	"fmt"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/legate-proxy/legate/internal/xds"
)

// ConfigDump renders the running configuration in the shape of Envoy's
// envoy.admin.v3.ConfigDump, in Envoy's order: bootstrap, clusters,
// endpoints (with includeEDS), listeners, routes, secrets. Static and
// dynamic (active, warming, draining) resources carry version_info and
// last_updated, so tools that read Envoy's dump read Legate's.
func (s *Server) ConfigDump(includeEDS bool) (*adminv3.ConfigDump, error) {
	dumps := []proto.Message{
		&adminv3.BootstrapConfigDump{Bootstrap: s.opts.Bootstrap, LastUpdated: timestamppb.New(s.start)},
		s.clusters.ConfigDump(),
	}
	if includeEDS {
		dumps = append(dumps, s.clusters.EndpointsDump())
	}
	dumps = append(dumps, s.listeners.ConfigDump(), s.routes.ConfigDump())
	if sd, err := s.secretsDump(); err != nil {
		return nil, err
	} else if sd != nil {
		dumps = append(dumps, sd)
	}
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

// secretsDump lists the secrets accepted over SDS; nil without dynamic
// config (Legate has no static secrets). The admin redacts private keys.
func (s *Server) secretsDump() (*adminv3.SecretsConfigDump, error) {
	if s.dynamic == nil {
		return nil, nil
	}
	sd := &adminv3.SecretsConfigDump{}
	for _, r := range s.dynamic.client.Resources(xds.SecretType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, fmt.Errorf("config dump: secret %q: %w", r.Name, err)
		}
		sd.DynamicActiveSecrets = append(sd.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: r.Name, VersionInfo: r.Version, LastUpdated: timestamppb.New(r.LastUpdated), Secret: a,
		})
	}
	return sd, nil
}

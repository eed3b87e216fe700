package bootstrap

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// xdsResourceTypes are the resource types xDS delivers, by proto full name.
var xdsResourceTypes = map[protoreflect.FullName]bool{
	"envoy.config.listener.v3.Listener":                true,
	"envoy.config.cluster.v3.Cluster":                  true,
	"envoy.config.route.v3.RouteConfiguration":         true,
	"envoy.config.endpoint.v3.ClusterLoadAssignment":   true,
	"envoy.extensions.transport_sockets.tls.v3.Secret": true,
}

// XDSResourceName returns how errors name an xDS resource: its kind and
// its name (a ClusterLoadAssignment is named by cluster_name). ok is false
// for a message that is not an xDS resource type.
func XDSResourceName(m proto.Message) (kind, name string, ok bool) {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return "listener", r.GetName(), true
	case *clusterv3.Cluster:
		return "cluster", r.GetName(), true
	case *routev3.RouteConfiguration:
		return "route_configuration", r.GetName(), true
	case *endpointv3.ClusterLoadAssignment:
		return "cluster_load_assignment", r.GetClusterName(), true
	case *tlsv3.Secret:
		return "secret", r.GetName(), true
	}
	return "", "", false
}

// CheckXDSResource holds one resource received over xDS (Listener,
// Cluster, RouteConfiguration, ClusterLoadAssignment or Secret) to what a
// bootstrap is held to: the proto validation rules and the allowlist. It
// returns nil, or an Errors with one line per problem, each naming the
// resource and the field path from the resource's root, e.g.
//
//	listener "l0": filter_chains[0].filters[0].typed_config.http_filters[0]: envoy.extensions.filters.http.lua.v3.Lua is not supported
//
// The text is meant for a NACK's error_detail. Each line unwraps to a
// *FieldError.
func CheckXDSResource(m proto.Message) error {
	kind, name, ok := XDSResourceName(m)
	if !ok {
		return Errors{fmt.Errorf("%s is not an xDS resource type", m.ProtoReflect().Descriptor().FullName())}
	}
	problems := Check(m, "")
	if len(problems) == 0 {
		return nil
	}
	errs := make(Errors, len(problems))
	for i, p := range problems {
		errs[i] = fmt.Errorf("%s %q: %w", kind, name, p)
	}
	return errs
}

// DecodeResources parses a filesystem xDS source (path_config_source or
// the legacy path): a DiscoveryResponse in YAML, or in JSON when isJSON,
// whose resources are Listeners, Clusters, RouteConfigurations,
// ClusterLoadAssignments or Secrets packed with their "@type". It parses
// the way Load does: every problem is reported with its path (prefixed
// with source, e.g. the file name), TypedStruct wrappers are unwrapped and
// a typed_config of an unsupported type parses to an empty placeholder,
// so the resources must still go through CheckXDSResource before use,
// which reports that type as not supported. version is version_info.
func DecodeResources(data []byte, isJSON bool, source string) (version string, resources []proto.Message, err error) {
	dr := &discoveryv3.DiscoveryResponse{}
	if problems, _ := decodeWith(data, isJSON, source, dr, xdsResourceTypes); len(problems) > 0 {
		return "", nil, problems
	}
	resources, errs := unpackResources(dr, source)
	if len(errs) > 0 {
		return "", nil, errs
	}
	return dr.GetVersionInfo(), resources, nil
}

// decodeResources is DecodeResources that goes on past problems: it
// returns the resources as far as they parsed, by index (nil where one
// could not be), with every problem.
func decodeResources(data []byte, isJSON bool, source string) ([]proto.Message, Errors) {
	dr := &discoveryv3.DiscoveryResponse{}
	problems, fatal := decodeWith(data, isJSON, source, dr, xdsResourceTypes)
	if fatal {
		return nil, problems
	}
	resources, errs := unpackResources(dr, source)
	return resources, append(problems, errs...)
}

// unpackResources unpacks dr's resources, keeping their indexes: a
// resource that is not an xDS resource type is nil.
func unpackResources(dr *discoveryv3.DiscoveryResponse, source string) ([]proto.Message, Errors) {
	var errs Errors
	resources := make([]proto.Message, len(dr.GetResources()))
	for i, a := range dr.GetResources() {
		name := typeNameOf(a.GetTypeUrl())
		if !xdsResourceTypes[name] {
			errs = append(errs, fmt.Errorf("%s: %w", source, &FieldError{
				Path: fmt.Sprintf("resources[%d]", i),
				Msg:  fmt.Sprintf("%s is not an xDS resource type", name),
			}))
			continue
		}
		m, uerr := a.UnmarshalNew()
		if uerr != nil {
			errs = append(errs, fmt.Errorf("%s: resources[%d]: %w", source, i, uerr))
			continue
		}
		resources[i] = m
	}
	return resources, errs
}

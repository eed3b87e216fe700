package client

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/xds"
)

const resourceWrapperType = "type.googleapis.com/envoy.service.discovery.v3.Resource"

// resourceName is the name Envoy takes from each resource type.
func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case *tlsv3.Secret:
		return r.GetName()
	}
	// Other types: a "name" string field, if any.
	if fd := m.ProtoReflect().Descriptor().Fields().ByName("name"); fd != nil {
		return m.ProtoReflect().Get(fd).String()
	}
	return ""
}

// unpack decodes one resource of typeURL. field names it in errors
// ("resources[2]").
func unpack(a *anypb.Any, typeURL, field string) (proto.Message, error) {
	if a == nil {
		return nil, fmt.Errorf("%s: is empty", field)
	}
	if a.GetTypeUrl() != typeURL {
		return nil, fmt.Errorf("%s: type %s in a response for %s", field, a.GetTypeUrl(), typeURL)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return nil, fmt.Errorf("%s: cannot decode %s: %w", field, typeURL, err)
	}
	return m, nil
}

// decodeSotw decodes a SotW response's resources, unwrapping
// envoy.service.discovery.v3.Resource (xds.config.resource-in-sotw).
func decodeSotw(typeURL, version string, list []*anypb.Any) ([]xds.Resource, error) {
	out := make([]xds.Resource, 0, len(list))
	seen := make(map[string]bool, len(list))
	for i, a := range list {
		field := fmt.Sprintf("resources[%d]", i)
		name := ""
		if a.GetTypeUrl() == resourceWrapperType {
			w := &discoveryv3.Resource{}
			if err := a.UnmarshalTo(w); err != nil {
				return nil, fmt.Errorf("%s: %w", field, err)
			}
			name, a = w.GetName(), w.GetResource()
			field += ".resource"
		}
		m, err := unpack(a, typeURL, field)
		if err != nil {
			return nil, err
		}
		if name, err = checkName(seen, name, m, field); err != nil {
			return nil, err
		}
		out = append(out, xds.Resource{Name: name, Version: version, Message: m})
	}
	return out, nil
}

// decodeDelta decodes a delta response's resources.
func decodeDelta(typeURL string, list []*discoveryv3.Resource) ([]xds.Resource, error) {
	out := make([]xds.Resource, 0, len(list))
	seen := make(map[string]bool, len(list))
	for i, r := range list {
		field := fmt.Sprintf("resources[%d]", i)
		if r.GetResource() == nil {
			// A name without a body (on-demand "does not exist"); Legate
			// does not ask for such answers.
			continue
		}
		m, err := unpack(r.GetResource(), typeURL, field+".resource")
		if err != nil {
			return nil, err
		}
		name, err := checkName(seen, r.GetName(), m, field)
		if err != nil {
			return nil, err
		}
		out = append(out, xds.Resource{Name: name, Version: r.GetVersion(), Message: m})
	}
	return out, nil
}

// checkName returns the resource's name (given, or taken from m) and
// refuses a response that has it twice or not at all.
func checkName(seen map[string]bool, name string, m proto.Message, field string) (string, error) {
	if name == "" {
		name = resourceName(m)
	}
	if name == "" {
		return "", fmt.Errorf("%s: resource has no name", field)
	}
	if seen[name] {
		return "", fmt.Errorf("%s: duplicate resource %q", field, name)
	}
	seen[name] = true
	return name, nil
}

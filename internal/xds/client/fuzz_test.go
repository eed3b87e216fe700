package client

import (
	"errors"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/bootstrap"
	"github.com/legate-proxy/legate/internal/xds"
)

var resourceTypes = []string{xds.ListenerType, xds.ClusterType, xds.RouteType, xds.EndpointType, xds.SecretType}

// FuzzDecodeResponse decodes arbitrary bytes as a SotW or delta
// discovery response, the way a control plane's answer is decoded. No
// panic; a refusal names the resource ("resources[i]..."); accepted
// resources have a non-empty name, unique in the response, and the
// response's type; and the support check on each (what decides ACK or
// NACK) reports only problems that unwrap to a *bootstrap.FieldError.
func FuzzDecodeResponse(f *testing.F) {
	mk := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			f.Fatal(err)
		}
		return a
	}
	sotw := func(typeURL string, rs ...*anypb.Any) []byte {
		b, _ := proto.Marshal(&discoveryv3.DiscoveryResponse{VersionInfo: "1", TypeUrl: typeURL, Resources: rs, Nonce: "n"})
		return b
	}
	delta := func(typeURL string, rs ...*discoveryv3.Resource) []byte {
		b, _ := proto.Marshal(&discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "1", TypeUrl: typeURL, Resources: rs, RemovedResources: []string{"gone"}, Nonce: "n"})
		return b
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}}}}}}}}
	secret := &tlsv3.Secret{Name: "s", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{}}}
	for _, seed := range [][]byte{
		sotw(xds.ListenerType, mk(listener("l"))),
		sotw(xds.ClusterType, mk(clusterRes("c")), mk(clusterRes("d"))),
		sotw(xds.RouteType, mk(routeRes("r", "c"))),
		sotw(xds.EndpointType, mk(cla)),
		sotw(xds.SecretType, mk(secret)),
		sotw(xds.ListenerType, mk(&discoveryv3.Resource{Name: "w", Resource: mk(listener("x"))})),
		sotw(xds.ListenerType, mk(clusterRes("wrong type"))),
		sotw(xds.ListenerType, mk(listener("a")), mk(listener("a"))),
		sotw(xds.ListenerType, mk(listener(""))),
		sotw(xds.ListenerType, &anypb.Any{TypeUrl: xds.ListenerType, Value: []byte{0xff, 0xff}}),
		sotw(xds.ListenerType, nil),
		sotw("type.googleapis.com/unknown.Type", &anypb.Any{TypeUrl: "type.googleapis.com/unknown.Type"}),
		sotw(xds.ListenerType, mk(&discoveryv3.Resource{Name: "w"})),
	} {
		f.Add(seed, false)
	}
	for _, seed := range [][]byte{
		delta(xds.ClusterType, &discoveryv3.Resource{Name: "c", Version: "2", Resource: mk(clusterRes("c"))}),
		delta(xds.ClusterType, &discoveryv3.Resource{Name: "c"}),
		delta(xds.RouteType, &discoveryv3.Resource{Resource: mk(routeRes("r", "c"))}, &discoveryv3.Resource{Name: "r", Resource: mk(routeRes("r", "c"))}),
		delta(xds.EndpointType, &discoveryv3.Resource{Name: "c", Resource: mk(listener("l"))}),
	} {
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, isDelta bool) {
		var res []xds.Resource
		var err error
		typeURL := xds.ListenerType
		if isDelta {
			var dr discoveryv3.DeltaDiscoveryResponse
			if proto.Unmarshal(data, &dr) != nil {
				return
			}
			typeURL = pickType(dr.GetTypeUrl())
			res, err = decodeDelta(typeURL, dr.GetResources())
		} else {
			var dr discoveryv3.DiscoveryResponse
			if proto.Unmarshal(data, &dr) != nil {
				return
			}
			typeURL = pickType(dr.GetTypeUrl())
			res, err = decodeSotw(typeURL, dr.GetVersionInfo(), dr.GetResources())
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "resources[") {
				t.Fatalf("refusal does not name the resource: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range res {
			if r.Name == "" || seen[r.Name] {
				t.Fatalf("resource name %q empty or repeated", r.Name)
			}
			seen[r.Name] = true
			if got := "type.googleapis.com/" + string(r.Message.ProtoReflect().Descriptor().FullName()); got != typeURL {
				t.Fatalf("%s resource in a %s response", got, typeURL)
			}
			cerr := bootstrap.CheckXDSResource(r.Message)
			var es bootstrap.Errors
			if cerr != nil && !errors.As(cerr, &es) {
				t.Fatalf("check error %T is not bootstrap.Errors", cerr)
			}
			for _, e := range es {
				var fe *bootstrap.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("problem %q is not a FieldError", e)
				}
			}
		}
	})
}

// pickType keeps a known resource type URL, so that mutated responses
// still reach the decoders of every type.
func pickType(u string) string {
	for _, t := range resourceTypes {
		if u == t {
			return t
		}
	}
	if len(u) > 0 {
		return resourceTypes[int(u[0])%len(resourceTypes)]
	}
	return xds.ListenerType
}

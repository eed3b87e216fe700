package client

import (
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/xds"
)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDecodeRefuses: a response is refused whole, naming the resource,
// when a resource is of the wrong type, nameless or repeated.
func TestDecodeRefuses(t *testing.T) {
	l := func(n string) *anypb.Any { return anyOf(t, listener(n)) }
	sotw := []struct {
		list []*anypb.Any
		want string
	}{
		{[]*anypb.Any{l("a"), anyOf(t, clusterRes("c"))}, "resources[1]: type type.googleapis.com/envoy.config.cluster.v3.Cluster in a response for"},
		{[]*anypb.Any{l("")}, "resources[0]: resource has no name"},
		{[]*anypb.Any{l("a"), l("a")}, `resources[1]: duplicate resource "a"`},
		{[]*anypb.Any{anyOf(t, &discoveryv3.Resource{Name: "a", Resource: l("x")}), l("a")}, `resources[1]: duplicate resource "a"`},
	}
	for _, tc := range sotw {
		if _, err := decodeSotw(xds.ListenerType, "v", tc.list); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decodeSotw: %v, want %q", err, tc.want)
		}
	}
	delta := []struct {
		list []*discoveryv3.Resource
		want string
	}{
		{[]*discoveryv3.Resource{{Name: "a", Resource: anyOf(t, clusterRes("a"))}}, "resources[0].resource: type"},
		{[]*discoveryv3.Resource{{Resource: l("")}}, "resources[0]: resource has no name"},
		{[]*discoveryv3.Resource{{Name: "a", Resource: l("a")}, {Resource: l("a")}}, `resources[1]: duplicate resource "a"`},
	}
	for _, tc := range delta {
		if _, err := decodeDelta(xds.ListenerType, tc.list); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decodeDelta: %v, want %q", err, tc.want)
		}
	}
	// The wrapper's name wins over the resource's own (resource-in-sotw).
	res, err := decodeSotw(xds.ListenerType, "v", []*anypb.Any{anyOf(t, &discoveryv3.Resource{Name: "w", Resource: l("x")})})
	if err != nil || len(res) != 1 || res[0].Name != "w" || res[0].Version != "v" {
		t.Fatalf("wrapped: %+v, %v", res, err)
	}
}

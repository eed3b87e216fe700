package networkfilter

import (
	"errors"
	"io"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Test-only filter types, registered in this test binary only.
func init() {
	Registry.Register(&wrapperspb.StringValue{}, func(proto.Message, *FactoryContext) (Filter, error) {
		return &passThrough{}, nil
	})
	Registry.Register(&wrapperspb.BoolValue{}, func(proto.Message, *FactoryContext) (Filter, error) {
		return &echo{readSize: 64}, nil
	})
	Registry.Register(&wrapperspb.Int32Value{}, func(proto.Message, *FactoryContext) (Filter, error) {
		return nil, errors.New("max: must be positive")
	})
	Registry.Register(&wrapperspb.UInt32Value{}, func(proto.Message, *FactoryContext) (Filter, error) {
		return "neither", nil
	})
}

func filterPB(t *testing.T, name string, m proto.Message) *listenerv3.Filter {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
}

func TestBuildChain(t *testing.T) {
	nonTerminal := func() *listenerv3.Filter { return filterPB(t, "gate", wrapperspb.String("")) }
	terminal := func() *listenerv3.Filter { return filterPB(t, "echo", wrapperspb.Bool(true)) }
	ch, err := BuildChain([]*listenerv3.Filter{nonTerminal(), nonTerminal(), terminal()}, &FactoryContext{}, "filter_chains[0].filters")
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.filters) != 2 || ch.Terminal() == nil || len(ch.readers) != 2 || len(ch.writers) != 2 {
		t.Fatalf("built %+v", ch)
	}
	c, _ := serve(t, ch)
	if got := exchange(t, c, "through"); got != "through" {
		t.Errorf("echoed %q", got)
	}

	for _, tt := range []struct {
		name    string
		filters []*listenerv3.Filter
		want    string
	}{
		{"terminal not last", []*listenerv3.Filter{terminal(), terminal()},
			"filter_chains[0].filters[0]: google.protobuf.BoolValue is a terminal filter and must be the last of the chain"},
		{"non-terminal last", []*listenerv3.Filter{nonTerminal()},
			"filter_chains[0].filters[0]: google.protobuf.StringValue is not a terminal filter; the last filter of a chain must be one"},
		{"factory error", []*listenerv3.Filter{filterPB(t, "", wrapperspb.Int32(0)), terminal()},
			"filter_chains[0].filters[0].typed_config: max: must be positive"},
		{"wrong kind", []*listenerv3.Filter{filterPB(t, "odd", wrapperspb.UInt32(0)), terminal()},
			"neither a terminal nor a non-terminal filter"},
		{"unknown type", []*listenerv3.Filter{filterPB(t, "x", wrapperspb.Double(1))},
			"filter_chains[0].filters[0]: google.protobuf.DoubleValue is not supported as a network filter"},
		{"no typed_config", []*listenerv3.Filter{{Name: "bare"}}, "filter_chains[0].filters[0]: typed_config is required"},
	} {
		_, err := BuildChain(tt.filters, &FactoryContext{}, "filter_chains[0].filters")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
}

// An empty filter list closes its connections, as in Envoy.
func TestBuildChainEmpty(t *testing.T) {
	ch, err := BuildChain(nil, &FactoryContext{}, "filter_chains[0].filters")
	if err != nil {
		t.Fatal(err)
	}
	c, done := serve(t, ch)
	<-done
	if n, err := c.Read(make([]byte, 1)); err == nil || (err != io.EOF && !strings.Contains(err.Error(), "reset")) {
		t.Errorf("read %d, %v from a connection of an empty chain", n, err)
	}
}

package perroute_test

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	_ "github.com/legate-proxy/legate/internal/filter/http/buffer"
	"github.com/legate-proxy/legate/internal/httpfilter/perroute"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func disabledBuffer() *bufferv3.BufferPerRoute {
	return &bufferv3.BufferPerRoute{Override: &bufferv3.BufferPerRoute_Disabled{Disabled: true}}
}

func TestCompile(t *testing.T) {
	set, err := perroute.Compile(map[string]*anypb.Any{
		"buf":      mustAny(t, disabledBuffer()),
		"off":      mustAny(t, &routev3.FilterConfig{Disabled: true, Config: mustAny(t, durationpb.New(1))}),
		"on":       mustAny(t, &routev3.FilterConfig{}),
		"wrapped":  mustAny(t, &routev3.FilterConfig{Config: mustAny(t, disabledBuffer())}),
		"optional": mustAny(t, &routev3.FilterConfig{IsOptional: true, Config: mustAny(t, durationpb.New(1))}),
	}, "typed_per_filter_config")
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 4 {
		t.Fatalf("want 4 entries (the unknown optional one dropped), got %d", len(set))
	}
	for name, want := range map[string]struct{ config, disabled bool }{
		"buf": {true, false}, "off": {false, true}, "on": {false, false}, "wrapped": {true, false},
	} {
		e, ok := set.Lookup(perroute.Intern(name))
		if !ok || (e.Config != nil) != want.config || e.Disabled != want.disabled {
			t.Errorf("%s: got %+v %v, want config %v disabled %v", name, e, ok, want.config, want.disabled)
		}
	}
	if _, ok := set.Lookup(perroute.Intern("optional")); ok {
		t.Error("an unknown optional config was kept")
	}
}

func TestCompileErrors(t *testing.T) {
	for name, tt := range map[string]struct {
		m    map[string]*anypb.Any
		want string
	}{
		"unknown type": {map[string]*anypb.Any{"x": mustAny(t, durationpb.New(1))},
			`tpfc["x"]: google.protobuf.Duration is not supported as a per-route HTTP filter config`},
		"unknown type in FilterConfig": {map[string]*anypb.Any{"x": mustAny(t, &routev3.FilterConfig{Config: mustAny(t, durationpb.New(1))})},
			`tpfc["x"].config: google.protobuf.Duration is not supported`},
		"parser refuses": {map[string]*anypb.Any{"b": mustAny(t, &bufferv3.BufferPerRoute{})},
			`tpfc["b"]: one of disabled or buffer is required`},
		"parser refuses limit": {map[string]*anypb.Any{"b": mustAny(t, &bufferv3.BufferPerRoute{Override: &bufferv3.BufferPerRoute_Buffer{Buffer: &bufferv3.Buffer{}}})},
			`tpfc["b"]: buffer.max_request_bytes: is required`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := perroute.Compile(tt.m, "tpfc")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestOverrideMostSpecificWins(t *testing.T) {
	a, b, c := perroute.Intern("a"), perroute.Intern("b"), perroute.Intern("c")
	vh := perroute.Set{{ID: a, Config: "vh-a"}, {ID: b, Config: "vh-b"}}
	route := perroute.Set{{ID: b, Disabled: true}, {ID: c, Config: "route-c"}}
	eff := perroute.Override(vh, route)
	for id, want := range map[perroute.ID]perroute.Entry{
		a: {ID: a, Config: "vh-a"}, b: {ID: b, Disabled: true}, c: {ID: c, Config: "route-c"},
	} {
		if got, _ := eff.Lookup(id); got != want {
			t.Errorf("id %d: got %+v, want %+v", id, got, want)
		}
	}
	if got := perroute.Override(vh, nil); len(got) != 2 {
		t.Errorf("no overrides changed the set: %v", got)
	}
	if perroute.Intern("a") != a {
		t.Error("Intern is not stable")
	}
}

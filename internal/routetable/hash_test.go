package routetable

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/lb"
)

func headerPolicy(name string, terminal bool) *routev3.RouteAction_HashPolicy {
	return &routev3.RouteAction_HashPolicy{Terminal: terminal, PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
		Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: name}}}
}

func TestHashPolicyCompute(t *testing.T) {
	req := &message.Request{Path: "/p?a=1&u=bob", Header: message.Headers{
		{Name: "x-a", Value: "1"}, {Name: "x-multi", Value: "b"}, {Name: "x-multi", Value: "a"},
		{Name: "cookie", Value: "k=v; sess=\"abc\""},
	}}
	in := HashInput{Request: req, Source: netip.MustParseAddr("192.0.2.7")}
	compute := func(ps ...*routev3.RouteAction_HashPolicy) (uint64, bool, string) {
		t.Helper()
		hp, err := compileHashPolicy(ps, "hash_policy")
		if err != nil {
			t.Fatal(err)
		}
		return hp.Compute(in)
	}
	h, ok, _ := compute(headerPolicy("X-A", false))
	if !ok || h != lb.HashString("1") {
		t.Errorf("header: %x %v", h, ok)
	}
	// Two policies fold: rotate left one, xor.
	a, b := lb.HashString("1"), lb.HashString("192.0.2.7")
	ip := &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
		ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
	if h, _, _ := compute(headerPolicy("x-a", false), ip); h != (a<<1|a>>63)^b {
		t.Errorf("combined hash %x", h)
	}
	// Terminal stops once it produced a hash; a missing header does not.
	if h, _, _ := compute(headerPolicy("x-a", true), ip); h != a {
		t.Errorf("terminal: %x", h)
	}
	if h, _, _ := compute(headerPolicy("x-absent", true), ip); h != b {
		t.Errorf("terminal without a value: %x", h)
	}
	// Several values hash in sorted order.
	req2 := *req
	req2.Header = message.Headers{{Name: "x-multi", Value: "a"}, {Name: "x-multi", Value: "b"}}
	h1, _, _ := compute(headerPolicy("x-multi", false))
	in.Request = &req2
	h2, _, _ := compute(headerPolicy("x-multi", false))
	in.Request = req
	if h1 != h2 {
		t.Error("header value order changed the hash")
	}
	q := &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
		QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "u"}}}
	if h, ok, _ := compute(q); !ok || h != lb.HashString("bob") {
		t.Errorf("query: %x %v", h, ok)
	}
	cookie := func(name string, ttl *durationpb.Duration) *routev3.RouteAction_HashPolicy {
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: name, Ttl: ttl, Path: "/x"}}}
	}
	if h, ok, sc := compute(cookie("sess", durationpb.New(time.Minute))); !ok || h != lb.HashString("abc") || sc != "" {
		t.Errorf("present cookie: %x %v %q", h, ok, sc)
	}
	if _, ok, _ := compute(cookie("none", nil)); ok {
		t.Error("absent cookie without ttl produced a hash")
	}
	h, ok, sc := compute(cookie("none", durationpb.New(time.Minute)))
	v, _, _ := strings.Cut(strings.TrimPrefix(sc, `none="`), `"`)
	if !ok || h != lb.HashString(v) || !strings.HasSuffix(sc, "; Max-Age=60; Path=/x; HttpOnly") {
		t.Errorf("generated cookie: %x %v %q", h, ok, sc)
	}
	fs := &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_FilterState_{
		FilterState: &routev3.RouteAction_HashPolicy_FilterState{Key: "k"}}}
	in.Dynamic = &streaminfo.Dynamic{}
	in.Dynamic.SetFilterState("k", streaminfo.StringObject("val"))
	if h, ok, _ := compute(fs); !ok || h != lb.HashString("val") {
		t.Errorf("filter state: %x %v", h, ok)
	}
}

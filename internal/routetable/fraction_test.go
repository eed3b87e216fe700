package routetable

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/runtime"
)

func TestRuntimeFraction(t *testing.T) {
	rc := parseRC(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  include_request_attempt_count: true
  routes:
  - match: {prefix: "/never", runtime_fraction: {default_value: {numerator: 0}}}
    direct_response: {status: 200}
  - match: {prefix: "/always", runtime_fraction: {default_value: {numerator: 100}}}
    direct_response: {status: 200}
  - match: {prefix: "/half", runtime_fraction: {default_value: {numerator: 5000, denominator: TEN_THOUSAND}}}
    direct_response: {status: 200}
  - match: {prefix: "/keyed", runtime_fraction: {default_value: {numerator: 100}, runtime_key: routing.keyed}}
    direct_response: {status: 200}
  - match: {prefix: "/frac", runtime_fraction: {default_value: {numerator: 0}, runtime_key: routing.frac}}
    direct_response: {status: 200}
`)
	st, err := structpb.NewStruct(map[string]any{"routing": map[string]any{
		"keyed": 0, "frac": map[string]any{"numerator": 1, "denominator": "MILLION"}}})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New([]*bootstrapv3.RuntimeLayer{{Name: "s", LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: st}}})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := New(rc, Options{Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	if !tbl.VirtualHosts[0].IncludeAttemptCount || tbl.VirtualHosts[0].IncludeAttemptCountInResponse {
		t.Error("include_request_attempt_count not compiled")
	}
	count := func(path string) int {
		n := 0
		for range 2000 {
			if r, _ := tbl.Match(req("a", path)); r != nil {
				n++
			}
		}
		return n
	}
	if n := count("/never"); n != 0 {
		t.Errorf("0%%: matched %d of 2000", n)
	}
	if n := count("/always"); n != 2000 {
		t.Errorf("100%%: matched %d of 2000", n)
	}
	if n := count("/half"); n < 800 || n > 1200 {
		t.Errorf("50%%: matched %d of 2000", n)
	}
	if n := count("/keyed"); n != 0 {
		t.Errorf("runtime 0 overriding 100%%: matched %d of 2000", n)
	}
	if n := count("/frac"); n > 5 {
		t.Errorf("runtime 1/1000000: matched %d of 2000", n)
	}
	if _, err := New(parseRC(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/", runtime_fraction: {runtime_key: x}}
    direct_response: {status: 200}
`), Options{}); err == nil {
		t.Error("runtime_fraction without default_value accepted")
	}
}

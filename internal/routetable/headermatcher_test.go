package routetable

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// TestHeaderMatcherWithoutRequest: a TCP connection (nil request) has no
// headers, so it matches as a request missing the header would.
func TestHeaderMatcherWithoutRequest(t *testing.T) {
	for _, tc := range []struct {
		matcher string
		want    bool
	}{
		{`{name: x, present_match: true}`, false},
		{`{name: x, present_match: false}`, true},
		{`{name: x, present_match: true, invert_match: true}`, true},
		{`{name: x, string_match: {exact: ""}}`, false},
		{`{name: x, string_match: {exact: ""}, treat_missing_header_as_empty: true}`, true},
		{`{name: x, string_match: {exact: ""}, treat_missing_header_as_empty: true, invert_match: true}`, false},
		{`{name: x, range_match: {start: 0, end: 10}, treat_missing_header_as_empty: true}`, false},
		{`{name: ":path", string_match: {prefix: "/"}}`, false},
	} {
		j, err := yaml.YAMLToJSON([]byte(tc.matcher))
		if err != nil {
			t.Fatal(err)
		}
		h := &routev3.HeaderMatcher{}
		if err := protojson.Unmarshal(j, h); err != nil {
			t.Fatalf("%s: %v", tc.matcher, err)
		}
		m, err := CompileHeaderMatcher(h, "header")
		if err != nil {
			t.Fatalf("%s: %v", tc.matcher, err)
		}
		if got := m.Matches(nil); got != tc.want {
			t.Errorf("%s: Matches(nil) = %v, want %v", tc.matcher, got, tc.want)
		}
		// A request without the header agrees, except for pseudo-headers,
		// which every request has.
		if h.GetName()[0] != ':' {
			if got := m.Matches(req("h", "/")); got != tc.want {
				t.Errorf("%s: request without the header: %v, want %v", tc.matcher, got, tc.want)
			}
		}
	}
}

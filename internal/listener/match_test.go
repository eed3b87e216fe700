package listener

import (
	"net/netip"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// tree compiles the filter_chain_match of each chain given as YAML; each
// chain's name is its index.
func tree(t testing.TB, matches ...string) (*node, error) {
	t.Helper()
	var cs []*criteria
	for i, m := range matches {
		var pb listenerv3.FilterChainMatch
		js, err := yaml.YAMLToJSON([]byte(m))
		if err != nil {
			t.Fatal(err)
		}
		if err := protojson.Unmarshal(js, &pb); err != nil {
			t.Fatal(err)
		}
		c, err := compileMatch(&pb, "m")
		if err != nil {
			return nil, err
		}
		c.chain = &filterChain{name: string(rune('0' + i))}
		c.index = i
		cs = append(cs, c)
	}
	return buildTree(cs, 0, "filter_chains")
}

func conn(local, remote, sni, transport string, alpn ...string) *matchInput {
	in := &matchInput{local: netip.MustParseAddrPort(local), remote: netip.MustParseAddrPort(remote),
		serverName: sni, transport: transport, alpn: alpn}
	in.direct = in.remote
	return in
}

func name(ch *filterChain) string {
	if ch == nil {
		return "none"
	}
	return ch.name
}

func TestMatchOrder(t *testing.T) {
	n, err := tree(t,
		`{}`,                                  // 0: catch-all
		`{server_names: [example.com]}`,       // 1
		`{server_names: ["*.example.com"]}`,   // 2
		`{server_names: ["*.b.example.com"]}`, // 3
		`{destination_port: 8443}`,            // 4
		`{transport_protocol: tls, application_protocols: [h2]}`,                                           // 5
		`{source_prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}`,                              // 6
		`{source_prefix_ranges: [{address_prefix: 10.1.0.0, prefix_len: 16}]}`,                             // 7
		`{prefix_ranges: [{address_prefix: 192.0.2.1, prefix_len: 32}], source_type: SAME_IP_OR_LOOPBACK}`, // 8
		`{server_names: [other.test], source_ports: [5555]}`,                                               // 9
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   *matchInput
		want string
	}{
		{conn("127.0.0.1:443", "127.0.0.1:1000", "", "raw_buffer"), "0"},
		{conn("127.0.0.1:443", "127.0.0.1:1000", "example.com", "tls"), "1"},
		{conn("127.0.0.1:443", "127.0.0.1:1000", "a.example.com", "tls"), "2"},
		{conn("127.0.0.1:443", "127.0.0.1:1000", "x.b.example.com", "tls"), "3"},
		{conn("127.0.0.1:443", "127.0.0.1:1000", "b.example.com", "tls"), "2"},
		// A specific port wins and is not left for another.
		{conn("127.0.0.1:8443", "127.0.0.1:1000", "example.com", "tls"), "4"},
		{conn("127.0.0.1:443", "127.0.0.1:1000", "", "tls", "http/1.1", "h2"), "5"},
		// "tls" picked chain 5's branch, whose ALPN does not fit; no
		// going back to the catch-all.
		{conn("127.0.0.1:443", "127.0.0.1:1000", "", "tls", "http/1.1"), "none"},
		{conn("127.0.0.1:443", "127.0.0.1:1000", "", "raw_buffer", "http/1.1"), "0"},
		{conn("127.0.0.1:443", "10.2.3.4:1000", "", "raw_buffer"), "6"},
		{conn("127.0.0.1:443", "10.1.3.4:1000", "", "raw_buffer"), "7"},
		{conn("192.0.2.1:443", "192.0.2.1:1000", "", "raw_buffer"), "8"},
		// The destination matched chain 8's range, whose source type does
		// not fit: Envoy does not go back to the catch-all.
		{conn("192.0.2.1:443", "198.51.100.1:1000", "", "raw_buffer"), "none"},
		{conn("127.0.0.1:443", "127.0.0.1:5555", "other.test", "tls"), "9"},
		{conn("127.0.0.1:443", "127.0.0.1:5556", "other.test", "tls"), "none"},
		{conn("[::ffff:10.1.0.9]:443", "[::ffff:10.1.0.9]:1", "", "raw_buffer"), "7"},
	} {
		if got := name(n.find(c.in)); got != c.want {
			t.Errorf("%+v: chain %s, want %s", *c.in, got, c.want)
		}
	}
}

func TestMatchDuplicates(t *testing.T) {
	for _, c := range [][]string{
		{`{}`, `{}`},
		{`{server_names: [a.test, b.test]}`, `{server_names: [b.test]}`},
		{`{source_ports: [1, 2]}`, `{source_ports: [2, 3]}`},
		{`{prefix_ranges: [{address_prefix: 10.0.0.1, prefix_len: 8}]}`, `{prefix_ranges: [{address_prefix: 10.9.9.9, prefix_len: 8}]}`},
	} {
		_, err := tree(t, c...)
		if err == nil || !strings.Contains(err.Error(), "filter_chains[1].filter_chain_match: multiple filter chains with the same matching rules") {
			t.Errorf("%q: %v", c, err)
		}
	}
	if _, err := tree(t, `{server_names: ["foo*.test"]}`); err == nil {
		t.Error("a partial wildcard was accepted")
	}
}

// BenchmarkMatch: choosing a chain allocates nothing.
func BenchmarkMatch(b *testing.B) {
	n, err := tree(b,
		`{server_names: [a.example.com, b.example.com]}`,
		`{server_names: ["*.example.com"], application_protocols: [h2, http/1.1]}`,
		`{source_prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}`,
		`{}`,
	)
	if err != nil {
		b.Fatal(err)
	}
	in := conn("127.0.0.1:443", "10.1.2.3:4000", "x.example.com", "tls", "http/1.1")
	b.ReportAllocs()
	for b.Loop() {
		if n.find(in) == nil {
			b.Fatal("no match")
		}
	}
}

func TestMatchAllocatesNothing(t *testing.T) {
	n, err := tree(t, `{server_names: ["*.example.com"]}`, `{source_prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}`, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	in := conn("127.0.0.1:443", "10.1.2.3:4000", "x.y.example.com", "tls", "h2")
	if a := testing.AllocsPerRun(100, func() { n.find(in) }); a != 0 {
		t.Fatalf("%v allocations per match", a)
	}
}

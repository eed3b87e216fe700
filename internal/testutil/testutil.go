// Package testutil holds the helpers every test needs: waiting for a
// condition, one HTTP GET, and a STATIC cluster as YAML or as a proto. It is
// the one test-helper package (loopback servers live in its loopback
// subpackage); production code must not import it.
package testutil

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// WaitTimeout bounds every WaitFor: long enough for a loaded CI machine,
// short enough that a hung test fails well inside the suite's limit.
const WaitTimeout = 20 * time.Second

// WaitFor polls cond until it holds, failing the test after WaitTimeout.
// Use it only for effects with no event to wait on (a peer noticing a
// close, a drain finishing on its own goroutine).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", WaitTimeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Get does one GET with c (http.DefaultClient if nil) and returns the
// status, body and headers; a transport error fails the test.
func Get(t testing.TB, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// StaticClusterYAML is a bootstrap's STATIC cluster entry (a YAML list
// item at column 0) for host:port addresses, with extra cluster fields
// (YAML at column 0, indented here).
func StaticClusterYAML(name, extra string, addrs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n  connect_timeout: 1s\n", name)
	if extra != "" {
		for _, line := range strings.Split(strings.Trim(extra, "\n"), "\n") {
			if strings.TrimSpace(line) != "" {
				line = "  " + line
			}
			b.WriteString(line + "\n")
		}
	}
	fmt.Fprintf(&b, "  load_assignment:\n    cluster_name: %s\n    endpoints:\n    - lb_endpoints:\n", name)
	for _, a := range addrs {
		host, port, _ := strings.Cut(a, ":")
		fmt.Fprintf(&b, "      - endpoint:\n          address:\n            socket_address: {address: %s, port_value: %s}\n", host, port)
	}
	return b.String()
}

// StaticCluster is the same STATIC cluster as a proto, for tests that
// build a cluster manager directly.
func StaticCluster(name string, addrs ...net.Addr) *clusterv3.Cluster {
	var lbs []*endpointv3.LbEndpoint
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a.String())
		p, _ := strconv.Atoi(port)
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
			}}},
		}}})
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
		},
	}
}

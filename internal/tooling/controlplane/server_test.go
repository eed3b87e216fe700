package controlplane_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/tooling/controlplane"
	"github.com/legate-proxy/legate/internal/tooling/controlplane/cptest"
)

func start(t *testing.T, o controlplane.Options) *controlplane.Server {
	t.Helper()
	o.XDSAddress, o.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	if o.ExpiryInterval == 0 {
		o.ExpiryInterval = 20 * time.Millisecond
	}
	o.Logger = slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := controlplane.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func api(s *controlplane.Server, path string) string { return "http://" + s.HTTPAddr().String() + path }

func newCLA() proto.Message { return &endpoint.ClusterLoadAssignment{} }

var services = []string{"service1", "service2"}

// TestSotWADS walks the case study over a state-of-the-world ADS stream:
// the default's clusters and listener, then instances registering,
// expiring and deregistering, each arriving as a new EDS response.
func TestSotWADS(t *testing.T) {
	s := start(t, controlplane.Options{ListenPort: 10123})
	ads := cptest.ADS(t, cptest.Dial(t, s.XDSAddr().String()), cptest.Node("sotw-node"))

	ads.Request(resource.ClusterType, nil, "", "", "")
	cds := ads.Recv()
	if got := cptest.Names(t, cds, func() proto.Message { return &cluster.Cluster{} }); !slices.Equal(got, services) {
		t.Fatalf("clusters %v, want %v", got, services)
	}
	ads.ACK(cds, nil)

	ads.Request(resource.EndpointType, services, "", "", "")
	eds := ads.Recv()
	for name, cla := range cptest.LoadAssignments(t, eds) {
		if eps := cptest.Endpoints(cla); len(eps) != 0 {
			t.Errorf("%s has endpoints %v before any registration", name, eps)
		}
	}
	ads.ACK(eds, services)

	ads.Request(resource.ListenerType, nil, "", "", "")
	lds := ads.Recv()
	l := &listener.Listener{}
	if len(lds.GetResources()) != 1 || lds.GetResources()[0].UnmarshalTo(l) != nil || l.GetAddress().GetSocketAddress().GetPortValue() != 10123 {
		t.Fatalf("listeners %v", lds.GetResources())
	}
	ads.ACK(lds, nil)

	// Register two instances; each PUT is a new EDS version.
	for i, body := range []string{
		`{"address":"127.0.0.11","port":8080,"metadata":{"zone":"a"}}`,
		`{"address":"127.0.0.12","port":8080,"ttl":"1s"}`,
	} {
		code, out := cptest.Do(t, "PUT", api(s, "/v1/services/service1/instances/"+[]string{"a", "b"}[i]), body)
		if code != 201 {
			t.Fatalf("PUT: %d %s", code, out)
		}
	}
	want := []string{"127.0.0.11:8080", "127.0.0.12:8080"}
	ads.Until(resource.EndpointType, services, func(r *discovery.DiscoveryResponse) bool {
		return slices.Equal(cptest.Endpoints(cptest.LoadAssignments(t, r)["service1"]), want)
	})

	// b's 1 s lease runs out without a heartbeat.
	ads.Until(resource.EndpointType, services, func(r *discovery.DiscoveryResponse) bool {
		return slices.Equal(cptest.Endpoints(cptest.LoadAssignments(t, r)["service1"]), want[:1])
	})

	// The NACK of a listener version shows up in /v1/nodes, with the ACKs.
	ads.Request(resource.ListenerType, nil, lds.GetVersionInfo(), lds.GetNonce(), "listener front_proxy: unsupported filter")
	var nodes struct {
		Nodes []controlplane.NodeStatus `json:"nodes"`
	}
	deadline := time.Now().Add(cptest.Timeout)
	for {
		_, body := cptest.Do(t, "GET", api(s, "/v1/nodes"), "")
		if err := json.Unmarshal([]byte(body), &nodes); err != nil {
			t.Fatal(err)
		}
		if len(nodes.Nodes) == 1 && nodes.Nodes[0].Types[resource.ListenerType].LastNack != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no NACK in /v1/nodes: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := nodes.Nodes[0]
	if n.ID != "sotw-node" || n.UserAgent != "cptest/1" || n.Streams[0].Service != "ads" || n.Streams[0].Protocol != "sotw" {
		t.Errorf("node %+v", n)
	}
	if got := n.Types[resource.ListenerType].LastNack.Error; got != "listener front_proxy: unsupported filter" {
		t.Errorf("last NACK %q", got)
	}
	if got := n.Types[resource.ClusterType].AckedVersion; got != cds.GetVersionInfo() {
		t.Errorf("CDS acked %q, want %q", got, cds.GetVersionInfo())
	}

	// Deregistering empties the service again.
	if code, out := cptest.Do(t, "DELETE", api(s, "/v1/services/service1/instances/a"), ""); code != 204 {
		t.Fatalf("DELETE: %d %s", code, out)
	}
	ads.Until(resource.EndpointType, services, func(r *discovery.DiscoveryResponse) bool {
		return len(cptest.Endpoints(cptest.LoadAssignments(t, r)["service1"])) == 0
	})
}

// TestDeltaADS: the incremental protocol sees the same changes as
// updates of the one resource concerned.
func TestDeltaADS(t *testing.T) {
	s := start(t, controlplane.Options{})
	d := cptest.DeltaADS(t, cptest.Dial(t, s.XDSAddr().String()), cptest.Node("delta-node"))

	d.Subscribe(resource.ClusterType, nil, nil, "", "")
	cds := d.Recv()
	if len(cds.GetResources()) != 2 {
		t.Fatalf("delta CDS: %d clusters, want 2", len(cds.GetResources()))
	}
	d.Subscribe(resource.EndpointType, []string{"service2"}, nil, "", "")
	eds := d.Recv()
	if len(eds.GetResources()) != 1 || eds.GetResources()[0].GetName() != "service2" {
		t.Fatalf("delta EDS %v", eds.GetResources())
	}

	if code, out := cptest.Do(t, "PUT", api(s, "/v1/services/service2/instances/x"), `{"address":"::1","port":9090}`); code != 201 {
		t.Fatalf("PUT: %d %s", code, out)
	}
	eds = d.Recv()
	cla := &endpoint.ClusterLoadAssignment{}
	if len(eds.GetResources()) != 1 || eds.GetResources()[0].GetResource().UnmarshalTo(cla) != nil {
		t.Fatalf("delta EDS update %v", eds.GetResources())
	}
	if got := cptest.Endpoints(cla); !slices.Equal(got, []string{"::1:9090"}) {
		t.Fatalf("endpoints %v", got)
	}
	if eds.GetSystemVersionInfo() != s.Version() {
		t.Errorf("delta system version %q, server version %q", eds.GetSystemVersionInfo(), s.Version())
	}
	// service1 changing is not sent: this stream does not subscribe to it.
	if code, _ := cptest.Do(t, "PUT", api(s, "/v1/services/service1/instances/y"), `{"address":"127.0.0.1","port":1}`); code != 201 {
		t.Fatal("PUT service1")
	}
	if code, _ := cptest.Do(t, "DELETE", api(s, "/v1/services/service2/instances/x"), ""); code != 204 {
		t.Fatal("DELETE")
	}
	eds = d.Recv()
	cla = &endpoint.ClusterLoadAssignment{}
	if len(eds.GetResources()) != 1 || eds.GetResources()[0].GetResource().UnmarshalTo(cla) != nil || cla.GetClusterName() != "service2" || len(cptest.Endpoints(cla)) != 0 {
		t.Fatalf("delta EDS after delete %v", eds.GetResources())
	}
}

// TestPerTypeEDS: a non-ADS EndpointDiscoveryService stream works too.
func TestPerTypeEDS(t *testing.T) {
	s := start(t, controlplane.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	st, err := endpointservice.NewEndpointDiscoveryServiceClient(cptest.Dial(t, s.XDSAddr().String())).StreamEndpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eds := cptest.Stream(t, st, cptest.Node("eds-node"), cancel)
	eds.Request(resource.EndpointType, []string{"service1"}, "", "", "")
	r := eds.Recv()
	if got := cptest.Names(t, r, newCLA); !slices.Equal(got, []string{"service1"}) {
		t.Fatalf("names %v", got)
	}
	eds.ACK(r, []string{"service1"})
	if code, _ := cptest.Do(t, "PUT", api(s, "/v1/services/service1/instances/z"), `{"address":"10.0.0.1","port":80}`); code != 201 {
		t.Fatal("PUT")
	}
	eds.Until(resource.EndpointType, []string{"service1"}, func(r *discovery.DiscoveryResponse) bool {
		return slices.Equal(cptest.Endpoints(cptest.LoadAssignments(t, r)["service1"]), []string{"10.0.0.1:80"})
	})
}

// TestResourceDirReload: a valid edit is pushed; an invalid one is refused
// with its file and field named, and the last good snapshot keeps serving.
func TestResourceDirReload(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"clusters.yaml", "listeners.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "fs", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, controlplane.Options{ResourcesDir: dir, PollInterval: 20 * time.Millisecond})
	ads := cptest.ADS(t, cptest.Dial(t, s.XDSAddr().String()), cptest.Node("fs-node"))
	ads.Request(resource.ListenerType, nil, "", "", "")
	lds := ads.Recv()
	ads.ACK(lds, nil)
	v1 := s.Version()

	listeners := filepath.Join(dir, "listeners.yaml")
	orig, _ := os.ReadFile(listeners)
	write := func(data string) {
		t.Helper()
		// Write-and-rename, as editors and Envoy's examples do.
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, listeners); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(string(orig), "port_value: 10000", "port_value: 10001", 1))
	lds = ads.Until(resource.ListenerType, nil, func(r *discovery.DiscoveryResponse) bool { return r.GetVersionInfo() != lds.GetVersionInfo() })
	l := &listener.Listener{}
	if err := lds.GetResources()[0].UnmarshalTo(l); err != nil || l.GetAddress().GetSocketAddress().GetPortValue() != 10001 {
		t.Fatalf("listener after edit: %v %v", l, err)
	}
	v2 := s.Version()
	if v2 == v1 {
		t.Fatal("version did not change")
	}

	// A route to a cluster that does not exist is refused.
	write(strings.Replace(string(orig), "cluster: backend", "cluster: nowhere", 1))
	var snap controlplane.SnapshotView
	deadline := time.Now().Add(cptest.Timeout)
	for snap.LastError == nil {
		if time.Now().After(deadline) {
			t.Fatal("the invalid edit was not reported in /v1/snapshot")
		}
		time.Sleep(20 * time.Millisecond)
		_, body := cptest.Do(t, "GET", api(s, "/v1/snapshot"), "")
		if err := json.Unmarshal([]byte(body), &snap); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []string{"listeners.yaml: resources[0]", `route.cluster: unknown cluster "nowhere"`} {
		if !strings.Contains(snap.LastError.Error, w) {
			t.Errorf("error %q lacks %q", snap.LastError.Error, w)
		}
	}
	if snap.Version != v2 || s.Version() != v2 {
		t.Errorf("version %q after a rejected edit, want %q kept", snap.Version, v2)
	}

	// Fixing the file publishes again and clears the error.
	write(string(orig))
	ads.Until(resource.ListenerType, nil, func(r *discovery.DiscoveryResponse) bool {
		l := &listener.Listener{}
		return r.GetResources()[0].UnmarshalTo(l) == nil && l.GetAddress().GetSocketAddress().GetPortValue() == 10000
	})
	_, body := cptest.Do(t, "GET", api(s, "/v1/snapshot"), "")
	snap = controlplane.SnapshotView{}
	if err := json.Unmarshal([]byte(body), &snap); err != nil || snap.LastError != nil || !slices.Equal(snap.Files, []string{"clusters.yaml", "listeners.yaml"}) {
		t.Errorf("snapshot after fix: %s", body)
	}
}

func TestStartRejectsInvalidDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n  typo: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := controlplane.Start(context.Background(), controlplane.Options{ResourcesDir: dir, XDSAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), `bad.yaml: resources[0] (cluster "c")`) || !strings.Contains(err.Error(), "typo") {
		t.Fatalf("error %v", err)
	}
}

func TestRegistryAPI(t *testing.T) {
	s := start(t, controlplane.Options{})
	inst := api(s, "/v1/services/svc/instances/i-1")
	for _, tc := range []struct {
		method, url, body string
		code              int
		want              string
	}{
		{"PUT", inst + "/heartbeat", "", 404, `"error"`},
		{"PUT", inst, `{"address":"127.0.0.1","port":8080,"ttl":"10s"}`, 201, `"ttl": "10s"`},
		{"PUT", inst, `{"address":"127.0.0.1","port":8080,"ttl":"10s"}`, 200, `"id": "i-1"`},
		{"PUT", inst + "/heartbeat", "", 200, `"service": "svc"`},
		{"PUT", inst, `{"address":"example.com","port":8080}`, 400, "IP literal"},
		{"PUT", inst, `{"address":"127.0.0.1","port":0}`, 400, "port 0"},
		{"PUT", inst, `{"address":"127.0.0.1","port":1,"tll":"1s"}`, 400, "unknown field"},
		{"PUT", api(s, "/v1/services/svc/instances/bad%20id"), `{"address":"127.0.0.1","port":1}`, 400, "instance id"},
		{"GET", api(s, "/v1/services"), "", 200, `"name": "svc"`},
		{"GET", api(s, "/v1/services/svc"), "", 200, `"address": "127.0.0.1"`},
		{"GET", api(s, "/v1/services/other"), "", 404, `"error"`},
		{"DELETE", inst, "", 204, ""},
		{"DELETE", inst, "", 404, `"error"`},
		{"GET", api(s, "/healthz"), "", 200, `"status": "ok"`},
		{"GET", api(s, "/v1/nope"), "", 404, `"error"`},
	} {
		code, body := cptest.Do(t, tc.method, tc.url, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s; want %d with %q", tc.method, tc.url, tc.body, code, body, tc.code, tc.want)
		}
	}
}

// TestSotWNACKHeld: a NACK of the version being served is not answered
// with that version again (the proxy would reject it in a loop) but with
// the next change; a NACK of a version the server has since replaced is
// answered at once with the current one. /v1/nodes shows the rejected
// version, not the last accepted one the NACK carries.
func TestSotWNACKHeld(t *testing.T) {
	s := start(t, controlplane.Options{})
	ads := cptest.ADS(t, cptest.Dial(t, s.XDSAddr().String()), cptest.Node("nack-node"))
	put := func(id, addr string) {
		t.Helper()
		if code, out := cptest.Do(t, "PUT", api(s, "/v1/services/service1/instances/"+id), `{"address":"`+addr+`","port":80}`); code != 201 {
			t.Fatalf("PUT %s: %d %s", id, code, out)
		}
	}
	ads.Request(resource.EndpointType, services, "", "", "")
	accepted := ads.Recv()
	ads.ACK(accepted, services)

	put("a", "10.0.0.1")
	rejected := ads.Recv()
	ads.Request(resource.EndpointType, services, accepted.GetVersionInfo(), rejected.GetNonce(), "endpoint 10.0.0.1: refused")
	put("b", "10.0.0.2")
	next := ads.Recv()
	if next.GetVersionInfo() == rejected.GetVersionInfo() {
		t.Fatalf("the NACKed version %s was sent again", rejected.GetVersionInfo())
	}
	if got := cptest.Endpoints(cptest.LoadAssignments(t, next)["service1"]); !slices.Equal(got, []string{"10.0.0.1:80", "10.0.0.2:80"}) {
		t.Fatalf("endpoints after the NACK %v", got)
	}

	var nodes struct {
		Nodes []controlplane.NodeStatus `json:"nodes"`
	}
	_, body := cptest.Do(t, "GET", api(s, "/v1/nodes"), "")
	if err := json.Unmarshal([]byte(body), &nodes); err != nil || len(nodes.Nodes) != 1 {
		t.Fatalf("/v1/nodes: %v %s", err, body)
	}
	if n := nodes.Nodes[0].Types[resource.EndpointType].LastNack; n == nil || n.Version != rejected.GetVersionInfo() {
		t.Errorf("last NACK %+v, want version %s", n, rejected.GetVersionInfo())
	}

	// next is not answered yet, so the change below has no watch to go
	// to; the NACK of next finds the snapshot moved on.
	put("c", "10.0.0.3")
	ads.Request(resource.EndpointType, services, accepted.GetVersionInfo(), next.GetNonce(), "refused again")
	if got := cptest.Endpoints(cptest.LoadAssignments(t, ads.Recv())["service1"]); len(got) != 3 {
		t.Fatalf("endpoints after a NACK of a replaced version %v, want three", got)
	}
}

// Package controlplane_test runs the legate-cp binary end to end: a raw
// xDS client on its gRPC port, the registry and read-only API on its HTTP
// port, resource files on disk, and signals.
package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/tooling/child"
	"github.com/legate-proxy/legate/internal/tooling/controlplane/cptest"
	"github.com/legate-proxy/legate/test/legatetest"
)

// cpBin is legate-cp: next to $LEGATE_BIN when that is set (make test),
// else built from this tree.
var cpBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("LEGATE_BIN") != "" {
		paths, err := legatetest.Find("legate-cp")
		if err != nil {
			fmt.Fprintln(os.Stderr, "LEGATE_BIN is set but legate-cp is missing:", err)
			return 1
		}
		cpBin = paths[0]
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "legate-cp-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cpBin = filepath.Join(dir, "legate-cp")
	cmd := exec.Command("go", "build", "-o", cpBin, "./cmd/legate-cp")
	cmd.Dir = legatetest.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building legate-cp: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

type proc struct {
	cmd        *exec.Cmd
	stderr     *legatetest.SyncBuffer
	xds, api   string
	done       chan struct{}
	exitStatus int
}

// startCP runs legate-cp on free ports and waits for /healthz. Another
// process may take a port between FreePort and legate-cp's bind: then it
// tries again on other ports.
func startCP(t *testing.T, args ...string) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, err := tryCP(t, args...)
		if err == nil {
			return p
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func tryCP(t *testing.T, args ...string) (*proc, error) {
	p := &proc{stderr: &legatetest.SyncBuffer{}, done: make(chan struct{})}
	p.xds = "127.0.0.1:" + strconv.Itoa(legatetest.FreePort(t))
	p.api = "127.0.0.1:" + strconv.Itoa(legatetest.FreePort(t))
	p.cmd = exec.Command(cpBin, append([]string{"--xds-address", p.xds, "--http-address", p.api, "--log-level", "debug"}, args...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		p.exitStatus = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := doQuiet("GET", "http://"+p.api+"/healthz"); code == 200 {
			break
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("legate-cp exited: %s", p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.cmd.Process.Kill()
			<-p.done
			return nil, fmt.Errorf("legate-cp /healthz did not answer within 20s: %s", p.stderr.String())
		}
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("legate-cp stderr:\n%s", p.stderr.String())
		}
	})
	return p, nil
}

func doQuiet(method, url string) (int, error) {
	req, err := httpNewRequest(method, url)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (p *proc) url(path string) string { return "http://" + p.api + path }

// stop sends SIGTERM and returns the exit status.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("legate-cp did not exit on SIGTERM")
	}
	return p.exitStatus
}

// TestDefaultWithRegistry: the embedded default over SotW ADS; instances
// registered, expired and deregistered over HTTP each change the served
// load assignment; a NACK is logged and shown; SIGTERM exits 0.
func TestDefaultWithRegistry(t *testing.T) {
	p := startCP(t, "--listen-port", "10555")
	ads := cptest.ADS(t, cptest.Dial(t, p.xds), cptest.Node("e2e"))

	ads.Request(resource.ClusterType, nil, "", "", "")
	cds := ads.Recv()
	if got := cptest.Names(t, cds, func() proto.Message { return &cluster.Cluster{} }); !slices.Equal(got, []string{"service1", "service2"}) {
		t.Fatalf("clusters %v", got)
	}
	ads.ACK(cds, nil)
	names := []string{"service1", "service2"}
	ads.Request(resource.EndpointType, names, "", "", "")
	ads.ACK(ads.Recv(), names)
	ads.Request(resource.ListenerType, nil, "", "", "")
	lds := ads.Recv()
	l := &listener.Listener{}
	if err := lds.GetResources()[0].UnmarshalTo(l); err != nil || l.GetAddress().GetSocketAddress().GetPortValue() != 10555 {
		t.Fatalf("listener %v %v", l, err)
	}
	// NACK it, as a proxy would a listener it cannot load.
	ads.Request(resource.ListenerType, nil, "", lds.GetNonce(), "filter_chains[0]: unsupported filter")

	for _, inst := range []struct{ id, body string }{
		{"a", `{"address":"127.0.0.11","port":8080,"ttl":"60s"}`},
		{"b", `{"address":"127.0.0.12","port":8080,"ttl":"1s"}`},
	} {
		if code, out := cptest.Do(t, "PUT", p.url("/v1/services/service2/instances/"+inst.id), inst.body); code != 201 {
			t.Fatalf("PUT %s: %d %s", inst.id, code, out)
		}
	}
	endpoints := func(want ...string) {
		t.Helper()
		ads.Until(resource.EndpointType, names, func(r *discovery.DiscoveryResponse) bool {
			return slices.Equal(cptest.Endpoints(cptest.LoadAssignments(t, r)["service2"]), want)
		})
	}
	endpoints("127.0.0.11:8080", "127.0.0.12:8080")
	endpoints("127.0.0.11:8080") // b's lease ran out
	if code, _ := cptest.Do(t, "DELETE", p.url("/v1/services/service2/instances/a"), ""); code != 204 {
		t.Fatal("DELETE")
	}
	endpoints()

	_, body := cptest.Do(t, "GET", p.url("/v1/nodes"), "")
	var nodes struct {
		Nodes []struct {
			ID    string `json:"id"`
			Types map[string]struct {
				AckedVersion string                  `json:"acked_version"`
				LastNack     *struct{ Error string } `json:"last_nack"`
			} `json:"types"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(body), &nodes); err != nil || len(nodes.Nodes) != 1 || nodes.Nodes[0].ID != "e2e" {
		t.Fatalf("/v1/nodes: %v %s", err, body)
	}
	if n := nodes.Nodes[0].Types[resource.ListenerType].LastNack; n == nil || !strings.Contains(n.Error, "unsupported filter") {
		t.Errorf("/v1/nodes shows no listener NACK: %s", body)
	}
	if nodes.Nodes[0].Types[resource.ClusterType].AckedVersion != cds.GetVersionInfo() {
		t.Errorf("/v1/nodes CDS ACK: %s", body)
	}

	if code := p.stop(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	logs := p.stderr.String()
	for _, w := range []string{"pushed version 1-", "expired service2/b", "level=WARN msg=NACK node=e2e", "unsupported filter"} {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %q", w)
		}
	}
}

// TestResourceDirectory serves Envoy's dynamic-config-fs configs (or the
// same layout from the unit tests' testdata), refuses an invalid edit with
// the file named and keeps the last good version, and refuses to start on
// an invalid directory.
func TestResourceDirectory(t *testing.T) {
	src := filepath.Join(legatetest.RepoRoot(), "..", "shared", "envoy-examples", "dynamic-config-fs", "configs")
	wantListener, wantCluster := "listener_0", "example_proxy_cluster"
	if _, err := os.Stat(src); err != nil {
		t.Logf("%s absent (%v); using internal/tooling/controlplane/testdata/fs", src, err)
		src = filepath.Join(legatetest.RepoRoot(), "internal", "controlplane", "testdata", "fs")
		wantListener, wantCluster = "web", "backend"
	}
	dir := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(src, "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := startCP(t, "--resources", dir, "--poll-interval", "50ms")
	d := cptest.DeltaADS(t, cptest.Dial(t, p.xds), cptest.Node("fs"))
	d.Subscribe(resource.ClusterType, nil, nil, "", "")
	if r := d.Recv(); len(r.GetResources()) != 1 || r.GetResources()[0].GetName() != wantCluster {
		t.Fatalf("delta CDS %v", r.GetResources())
	}
	d.Subscribe(resource.ListenerType, nil, nil, "", "")
	if r := d.Recv(); len(r.GetResources()) != 1 || r.GetResources()[0].GetName() != wantListener {
		t.Fatalf("delta LDS %v", r.GetResources())
	}
	var snap struct {
		Version   string
		LastError *struct{ Error string } `json:"last_error"`
	}
	getSnap := func() {
		t.Helper()
		_, body := cptest.Do(t, "GET", p.url("/v1/snapshot"), "")
		if err := json.Unmarshal([]byte(body), &snap); err != nil {
			t.Fatal(err)
		}
	}
	getSnap()
	good := snap.Version

	bad := "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: broken\n  connect_timeout: forever\n"
	if err := os.WriteFile(filepath.Join(dir, "zz-bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	err := child.Poll(context.Background(), nil, 20*time.Second, 50*time.Millisecond, func() error {
		getSnap()
		if snap.LastError == nil {
			return fmt.Errorf("no last_error yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(snap.LastError.Error, `zz-bad.yaml: resources[0] (cluster "broken")`) || !strings.Contains(snap.LastError.Error, "connect_timeout") {
		t.Errorf("last_error %q does not name the file, resource and field", snap.LastError.Error)
	}
	if snap.Version != good {
		t.Errorf("version %q after an invalid edit, want %q kept", snap.Version, good)
	}
	if !strings.Contains(p.stderr.String(), "resources rejected; still serving the last good snapshot") {
		t.Error("the rejection was not logged")
	}
	p.stop(t)

	// Started on the invalid directory, it refuses to run.
	out, err := exec.Command(cpBin, "--xds-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--resources", dir).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "zz-bad.yaml") {
		t.Errorf("start on an invalid directory: %v\n%s", err, out)
	}
}

package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlagsEnvoyForms(t *testing.T) {
	tests := []struct {
		args    []string
		check   func(*flags) bool
		wantErr string
	}{
		{args: []string{"-c", "a.yaml"}, check: func(f *flags) bool { return f.configPath == "a.yaml" && f.mode == "serve" }},
		{args: []string{"--config-path", "a.yaml", "--mode", "validate"}, check: func(f *flags) bool { return f.mode == "validate" }},
		{args: []string{"-l", "debug", "--concurrency", "1", "--drain-time-s", "3"}, check: func(f *flags) bool {
			return f.logLevel == "debug" && f.concurrency == 1 && f.drainTimeS == 3
		}},
		{args: []string{"--service-node", "n1", "--service-cluster", "c1"}, check: func(f *flags) bool {
			return f.serviceNode == "n1" && f.serviceCluster == "c1"
		}},
		{args: []string{"--mode", "init_only"}, wantErr: `--mode: "init_only" is not supported`},
		{args: []string{"--no-such-flag"}, wantErr: "flag provided but not defined"},
		{args: []string{"stray"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		f, err := parseFlags(tt.args, &bytes.Buffer{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !tt.check(f) {
			t.Errorf("%v: got %+v, %v", tt.args, f, err)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "legate  version: ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("version line %q", out.String())
	}
}

// validConfig listens on 127.0.0.1:<port>.
const validConfig = `
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts: [{name: b, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c}}]}]
          http_filters:
          - name: router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: c
    load_assignment:
      cluster_name: c
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 2}}}}]}]
`

// takenPortConfig is validConfig on a port this test holds: in validate
// mode legate must not bind, and a bind attempt would fail (even as root,
// which CI is, where a privileged port would not).
func takenPortConfig(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return fmt.Sprintf(validConfig, ln.Addr().(*net.TCPAddr).Port)
}

// Validate mode builds everything but binds nothing.
func TestValidateMode(t *testing.T) {
	dir := t.TempDir()
	config := takenPortConfig(t)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(config), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"-c", good, "--mode", "validate"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "configuration '" + good + "' OK\n"; out.String() != want {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(config, "route: {cluster: c}", "route: {cluster: nope}", 1)), 0o644)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"-c", bad, "--mode", "validate"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d for an unknown cluster", code)
	}
	if !strings.Contains(errOut.String(), `unknown cluster "nope"`) || out.Len() != 0 {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

// --config-yaml alone is a complete config source, as in Envoy.
func TestConfigYAMLOnly(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--config-yaml", takenPortConfig(t), "--mode", "validate"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

// One run reports the problems of every stage: a typo and an unsupported
// value (parse and support check) together with what only building finds
// (an unknown cluster, a duplicate cluster), each as a full field path.
func TestValidateReportsEverything(t *testing.T) {
	config := strings.Replace(takenPortConfig(t), "route: {cluster: c}", "route: {cluster: nope}", 1) + `
  - name: c
    load_assignment: {cluster_name: c}
  - name: d
    lb_policy: cluster_provided
    conect_timeout: 1s
`
	var out, errOut bytes.Buffer
	if code := run([]string{"--config-yaml", config, "--mode", "validate"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d", code)
	}
	want := `error: --config-yaml: static_resources.clusters[2]: unknown field "conect_timeout" in envoy.config.cluster.v3.Cluster (did you mean "connect_timeout"?)
error: static_resources.clusters[2].lb_policy: CLUSTER_PROVIDED is not supported
error: static_resources.clusters[1].name: duplicate cluster name "c" (also clusters[0])
error: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster "nope"
`
	if errOut.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), want)
	}
}

// --mode validate reads the filesystem xDS sources the bootstrap names.
func TestValidateReadsXDSFiles(t *testing.T) {
	dir := t.TempDir()
	cds := filepath.Join(dir, "cds.yaml")
	config := fmt.Sprintf("dynamic_resources: {cds_config: {path_config_source: {path: %s}}}", cds)
	var out, errOut bytes.Buffer
	os.WriteFile(cds, []byte(`resources: [{"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: a, type: strict_dns}]`), 0o644)
	if code := run([]string{"--config-yaml", config, "--mode", "validate"}, &out, &errOut); code != 0 {
		t.Fatalf("good cds.yaml: exit %d: %s", code, errOut.String())
	}
	os.WriteFile(cds, []byte("garbage: true\n"), 0o644)
	errOut.Reset()
	if code := run([]string{"--config-yaml", config, "--mode", "validate"}, &out, &errOut); code != 1 {
		t.Fatalf("garbage cds.yaml: exit %d", code)
	}
	if want := cds + `: unknown field "garbage" in envoy.service.discovery.v3.DiscoveryResponse`; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q lacks %q", errOut.String(), want)
	}
}

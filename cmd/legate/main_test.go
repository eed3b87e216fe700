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
		{args: []string{"--mode", "init_only"}, check: func(f *flags) bool { return f.mode == "init_only" }},
		{args: []string{"--mode", "check"}, wantErr: `--mode: "check" is not supported`},
		// What wrappers (Istio's pilot-agent, hot-restarter.py) pass.
		{args: []string{"--log-path", "/tmp/x.log", "--log-format", "[%Y] %v", "--component-log-level", "upstream:debug",
			"--service-zone", "z1", "--base-id", "7", "--restart-epoch", "2", "--disable-hot-restart",
			"--parent-shutdown-time-s", "60", "--drain-strategy", "immediate", "--allow-unknown-static-fields",
			"--reject-unknown-dynamic-fields"}, check: func(f *flags) bool {
			cl := f.commandLine()
			return f.logPath == "/tmp/x.log" && f.logFormat == "[%Y] %v" && f.componentLogLevel == "upstream:debug" &&
				f.serviceZone == "z1" && cl.GetBaseId() == 7 && cl.GetRestartEpoch() == 2 && cl.GetDisableHotRestart() &&
				cl.GetParentShutdownTime().AsDuration().Seconds() == 60 && f.allowUnknownStaticFields && f.rejectUnknownDynamicFields
		}},
		{args: []string{"--drain-strategy", "gradual"}, wantErr: "gradual is not supported"},
		{args: []string{"--restart-epoch", "-1"}, wantErr: "must not be negative"},
		{args: []string{"--no-such-flag"}, wantErr: "flag provided but not defined"},
		{args: []string{"stray"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		f, err := parseFlags(tt.args, &bytes.Buffer{}, &bytes.Buffer{})
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

// --help prints the usage to stdout and exits 0, as Envoy's does.
func TestHelpToStdout(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "--config-path") && !strings.Contains(out.String(), "-config-path") || errOut.Len() != 0 {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

// Logging flags: a bad component or format is an error before anything
// starts; --log-path and --log-format shape the lines written.
func TestLoggingFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--component-log-level", "nosuch:debug"}, `--component-log-level: unknown logger "nosuch"`},
		{[]string{"--component-log-level", "upstream:loud"}, `unknown log level "loud"`},
		{[]string{"--log-format", "%Q"}, "unknown flag %Q"},
	} {
		var out, errOut bytes.Buffer
		if code := run(append(tc.args, "--config-yaml", "{}", "--mode", "validate"), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut.String(), tc.want)
		}
	}
	logFile := filepath.Join(t.TempDir(), "legate.log")
	var out, errOut bytes.Buffer
	// An unknown static field, allowed, is logged as a warning: a line to look at.
	args := []string{"--config-yaml", "{nosuch: 1}", "--mode", "validate", "--allow-unknown-static-fields",
		"--log-path", logFile, "--log-format", "[%l][%n] %v"}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	want := `[warning][main] --config-yaml: unknown field "nosuch" in envoy.config.bootstrap.v3.Bootstrap (ignored: --allow-unknown-static-fields)` + "\n"
	if string(got) != want || errOut.Len() != 0 {
		t.Errorf("log file %q, want %q; stderr %q", got, want, errOut.String())
	}
}

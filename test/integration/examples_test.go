package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/test/legatetest"
	"sigs.k8s.io/yaml"
)

// examplesDir is ../../../shared/envoy-examples relative to this file
// (the repository's sibling shared/ directory); tests skip without it.
func examplesDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(thisDir(), "..", "..", "..", "shared", "envoy-examples")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SKIP: %s is absent: %v", dir, err)
	}
	return dir
}

func TestEnvoyExamples(t *testing.T) {
	t.Parallel()
	dir := examplesDir(t)

	t.Run("front-proxy validates", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join(dir, "front-proxy", "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no front-proxy configs: %v", err)
		}
		for _, f := range files {
			out, err := exec.Command(legatetest.Bin(), "--mode", "validate", "-c", f).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "configuration '"+f+"' OK") {
				t.Errorf("%s: %v\n%s", filepath.Base(f), err, out)
			}
		}
	})

	// How many of Envoy's example bootstraps the real binary validates:
	// the measure of how much of Envoy's own configuration loads.
	t.Run("count validated", func(t *testing.T) {
		notBootstraps := map[string]bool{
			"global-ratelimit/ratelimit_config_config.yaml":  true,
			"global-ratelimit/ratelimit_config_example.yaml": true,
			"dynamic-config-fs/configs/cds.yaml":             true,
			"dynamic-config-fs/configs/lds.yaml":             true,
		}
		var ok, total int
		var refused []string
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			if ext := filepath.Ext(path); (ext != ".yaml" && ext != ".json") || notBootstraps[filepath.ToSlash(rel)] {
				return nil
			}
			total++
			if exec.Command(legatetest.Bin(), "--mode", "validate", "-c", path).Run() == nil {
				ok++
			} else {
				refused = append(refused, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Envoy examples validated by legate --mode validate: %d of %d (refused: %s)", ok, total, strings.Join(refused, ", "))
	})

	t.Run("front-proxy serves", func(t *testing.T) {
		src, err := os.ReadFile(filepath.Join(dir, "front-proxy", "envoy.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		dns := startDNS(t)
		dns.Set("service-envoy-1", "127.0.0.1")
		dns.Set("service-envoy-2", "127.0.0.1")
		ups := map[string]*Upstream{
			"service-envoy-1": startUpstream(t, "service1", nil),
			"service-envoy-2": startUpstream(t, "service2", nil),
		}
		cfg := rewriteFrontProxy(t, src, dns, ups)
		l := startLegate(t, cfg, nil)

		for i, listener := range []string{"l0", "l1"} {
			for _, svc := range []string{"1", "2"} {
				scheme := []string{"http", "https"}[i]
				url := fmt.Sprintf("%s://127.0.0.1:%d/service/%s", scheme, l.Port(listener), svc)
				out, stderr, err := runCmd(t, "curl", "-sS", "-k", url)
				if err != nil {
					t.Errorf("curl %s: %v %s", url, err, stderr)
					continue
				}
				if e := decodeEcho(t, out); e.Upstream != "service"+svc || e.Path != "/service/"+svc {
					t.Errorf("%s answered by %s for %s", url, e.Upstream, e.Path)
				}
			}
		}
	})
}

// rewriteFrontProxy changes only addresses and ports of Envoy's
// front-proxy config (listeners and admin onto free loopback ports, the
// endpoints onto the test upstreams' ports) and points its STRICT_DNS
// clusters at the test DNS server. Nothing is written into the repository.
func rewriteFrontProxy(t *testing.T, src []byte, dns *DNSServer, ups map[string]*Upstream) string {
	t.Helper()
	js, err := yaml.YAMLToJSON(src)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	obj := func(v any, keys ...string) map[string]any {
		for _, k := range keys {
			v = v.(map[string]any)[k]
		}
		return v.(map[string]any)
	}
	// Sentinel ports become {{port "..."}} after marshalling.
	sentinel := map[int]string{}
	next := 60001
	setPort := func(sa map[string]any, name string) {
		sa["address"] = "127.0.0.1"
		sa["port_value"] = next
		sentinel[next] = name
		next++
	}
	sr := obj(doc, "static_resources")
	for i, l := range sr["listeners"].([]any) {
		setPort(obj(l, "address", "socket_address"), fmt.Sprintf("l%d", i))
	}
	setPort(obj(doc, "admin", "address", "socket_address"), "admin")
	for _, c := range sr["clusters"].([]any) {
		cm := c.(map[string]any)
		cm["typed_dns_resolver_config"] = map[string]any{
			"name": "envoy.network.dns_resolver.cares",
			"typed_config": map[string]any{
				"@type":     "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
				"resolvers": []any{map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": dns.Port}}},
			},
		}
		for _, e := range obj(cm, "load_assignment")["endpoints"].([]any) {
			for _, le := range e.(map[string]any)["lb_endpoints"].([]any) {
				sa := obj(le, "endpoint", "address", "socket_address")
				u, ok := ups[sa["address"].(string)]
				if !ok {
					t.Fatalf("unexpected endpoint %v", sa["address"])
				}
				sa["port_value"] = u.Port
			}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for port, name := range sentinel {
		old := fmt.Sprintf("port_value: %d\n", port)
		if !strings.Contains(text, old) {
			t.Fatalf("sentinel port %d not found in rewritten config", port)
		}
		text = strings.Replace(text, old, fmt.Sprintf("port_value: {{port %q}}\n", name), 1)
	}
	return text
}

package main

import (
	"os"
	"os/exec"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/bootstrap"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

func TestLegateConfigIsEnvoyV3(t *testing.T) {
	dir := t.TempDir()
	argv, err := legateCommand("legate", dir, 18080, 18081)
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) < 3 || argv[1] != "-c" {
		t.Fatalf("argv %q", argv)
	}
	src, err := os.ReadFile(argv[2])
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(src)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatal(err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if got := b.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress().GetPortValue(); got != 18080 {
		t.Errorf("listener port %d", got)
	}
}

// The generated nginx and haproxy configs pass the proxies' own checks,
// where they are installed.
func TestNativeConfigsValidate(t *testing.T) {
	type gen func(bin, dir string) ([]string, []string, error) // run argv, check argv
	cases := map[string]gen{
		"nginx proxy": func(bin, dir string) ([]string, []string, error) {
			argv, err := nginxProxyCommand(bin, dir, 18080, 18081)
			return argv, append(append([]string{}, argv...), "-t"), err
		},
		"nginx upstream": func(bin, dir string) ([]string, []string, error) {
			argv, err := nginxUpstreamCommand(bin, dir, 18081)
			return argv, append(append([]string{}, argv...), "-t"), err
		},
		"haproxy": func(bin, dir string) ([]string, []string, error) {
			argv, err := haproxyCommand(bin, dir, 18080, 18081)
			return argv, []string{bin, "-c", "-f", argv[2]}, err
		},
	}
	bins := map[string]string{"nginx proxy": "nginx", "nginx upstream": "nginx", "haproxy": "haproxy"}
	for name, g := range cases {
		t.Run(name, func(t *testing.T) {
			bin, err := exec.LookPath(bins[name])
			if err != nil {
				t.Skipf("SKIP: %s not installed", bins[name])
			}
			_, check, err := g(bin, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(check[0], check[1:]...).CombinedOutput(); err != nil {
				t.Errorf("%q: %v\n%s", check, err, out)
			}
		})
	}
}

// TestTreeCPUAdvances burns CPU in this process and expects treeCPU to see
// it, which checks the field positions and the tick conversion.
func TestTreeCPUAdvances(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("SKIP: no /proc on this system")
	}
	self := os.Getpid()
	before, err := treeCPU(self)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	x := 0
	for {
		for i := 0; i < 1e6; i++ {
			x += i
		}
		now, err := treeCPU(self)
		if err != nil {
			t.Fatal(err)
		}
		if now-before >= 50*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time moved only %v in 60s of spinning", now-before)
		}
	}
	_ = x
}

func TestLegateConfigPassesSupportCheck(t *testing.T) {
	argv, err := legateCommand("legate", t.TempDir(), 18080, 18081)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrap.Load(bootstrap.Options{ConfigPath: argv[2]}); err != nil {
		t.Error(err)
	}
}

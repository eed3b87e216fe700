package integration

import (
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/legate-proxy/legate/test/legatetest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// basicTmpl: one listener "http" routing everything to cluster "up" at
// {{.Up}} (host:port split into .UpHost/.UpPort).
const basicTmpl = `
static_resources:
  listeners:
  - name: main
    address:
      socket_address: {address: 127.0.0.1, port_value: {{port "http"}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": ` + hcmType + `
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: up}` + routerFilter + `
  clusters:
  - name: up
    connect_timeout: 1s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: {{.UpHost}}, port_value: {{.UpPort}}}
`

type upData struct {
	UpHost string
	UpPort int
}

func upOf(u *Upstream) upData { return upData{UpHost: u.Host, UpPort: u.Port} }

func TestCLI(t *testing.T) {
	t.Parallel()

	t.Run("version", func(t *testing.T) {
		out, err := exec.Command(legatetest.Bin(), "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("--version: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "version:") {
			t.Errorf("--version printed %q, want Envoy's '<name> version: ...' line", out)
		}
	})

	t.Run("validate binds nothing", func(t *testing.T) {
		// Hold the listener and admin ports: validate must still pass,
		// which it cannot if it tried to bind them.
		held, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		port := held.Addr().(*net.TCPAddr).Port
		cfg := strings.ReplaceAll(basicTmpl, `{{port "http"}}`, itoa(port))
		cfg += "\nadmin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: " + itoa(port) + "}\n"
		text, _ := renderConfig(t, cfg, upData{"127.0.0.1", 1})
		path := writeFile(t, "ok.yaml", text)
		out, err := exec.Command(legatetest.Bin(), "--mode", "validate", "-c", path).CombinedOutput()
		if err != nil {
			t.Fatalf("validate: %v\n%s", err, out)
		}
		if want := "configuration '" + path + "' OK\n"; !strings.Contains(string(out), want) {
			t.Errorf("validate printed %q, want %q", out, want)
		}
	})

	t.Run("config errors golden", func(t *testing.T) {
		cmd := exec.Command(legatetest.Bin(), "--mode", "validate", "-c", "testdata/bad.yaml")
		cmd.Dir = thisDir()
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("bad config: want exit status 1, got %v\nstdout: %s", err, out)
		}
		got := string(ee.Stderr)
		golden := filepath.Join(thisDir(), "testdata", "bad.golden")
		if *update {
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("stderr differs from %s (run with -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
		}
		for _, must := range []string{
			"http_filters[0]: envoy.extensions.filters.http.lua.v3.Lua is not supported",
			`unknown field "conect_timeout"`,
		} {
			if !strings.Contains(got, must) {
				t.Errorf("stderr lacks %q", must)
			}
		}
	})

	t.Run("config-yaml merged over file", func(t *testing.T) {
		up := startUpstream(t, "up", nil)
		adminPort := legatetest.FreePort(t)
		// The file has no admin block; --config-yaml supplies it.
		text, ports := renderConfig(t, "admin: {}\n"+basicTmpl, upOf(up))
		text = strings.Replace(text, "admin: {}\n", "", 1)
		legatetest.Start(t, text, legatetest.Options{AdminPort: adminPort, Args: []string{"--config-yaml",
			"admin: {address: {socket_address: {address: 127.0.0.1, port_value: " + itoa(adminPort) + "}}}"}})
		resp, body := httpGet(t, "http://127.0.0.1:"+itoa(ports["http"])+"/x")
		if resp.StatusCode != 200 || decodeEcho(t, body).Upstream != "up" {
			t.Errorf("proxy: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("SIGTERM drains", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		release := make(chan struct{})
		up := startUpstream(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-release
			_, _ = io.WriteString(w, "done")
		}))
		l := startLegate(t, basicTmpl, upOf(up))
		type result struct {
			code int
			body string
			err  error
		}
		res := make(chan result, 1)
		go func() {
			c := &http.Client{Timeout: 20 * time.Second}
			resp, err := c.Get(l.URL("http", "/slow"))
			if err != nil {
				res <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			res <- result{resp.StatusCode, string(b), err}
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("request did not reach the upstream")
		}
		l.Signal(syscall.SIGTERM)
		eventually(t, 10*time.Second, "listener to refuse new connections", func() bool {
			c, err := net.DialTimeout("tcp", l.Addr("http"), time.Second)
			if err != nil {
				return true
			}
			c.Close()
			return false
		})
		close(release)
		select {
		case r := <-res:
			if r.err != nil || r.code != 200 || r.body != "done" {
				t.Errorf("in-flight request: %d %q %v", r.code, r.body, r.err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("in-flight request did not finish")
		}
		if code := l.Wait(15 * time.Second); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
	})
}

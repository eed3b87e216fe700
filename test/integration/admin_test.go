package integration

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestStatsAndAdmin(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "svc", nil)
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("main", "stat_prefix: ingress\n"+routeAll("svc"), "")},
		[]string{testutil.StaticClusterYAML("svc", "", up.Addr)}), nil)

	for i := 0; i < 5; i++ {
		if resp, body := httpGet(t, l.URL("main", "/traffic")); resp.StatusCode != 200 {
			t.Fatalf("traffic: %d %s", resp.StatusCode, body)
		}
	}
	adminDo := func(t *testing.T, method, path string) (*http.Response, string) {
		t.Helper()
		return do(t, defaultClient, mustReq(t, method, l.AdminURL(path), nil))
	}

	t.Run("stats text", func(t *testing.T) {
		lst := "listener.127.0.0.1_" + itoa(l.Port("main"))
		// Stats are updated when a stream ends, possibly just after the
		// client got its response: poll.
		var st map[string]string
		want := map[string]int{
			"http.ingress.downstream_rq_total": 5,
			"http.ingress.downstream_rq_2xx":   5,
			"cluster.svc.upstream_rq_200":      5,
			"cluster.svc.upstream_rq_2xx":      5,
			"cluster.svc.upstream_rq_total":    5,
			"cluster.svc.membership_healthy":   1,
			"cluster.svc.membership_total":     1,
			lst + ".downstream_cx_total":       1,
			"server.live":                      1,
		}
		eventually(t, 10*time.Second, "stats to settle", func() bool {
			st = l.Stats(t)
			for k, v := range want {
				if n, err := strconv.Atoi(st[k]); err != nil || n < v {
					return false
				}
			}
			return true
		})
		for _, k := range []string{"server.uptime", "server.memory_allocated", "server.concurrency", "http.ingress.downstream_cx_active", lst + ".downstream_cx_active", "cluster.svc.upstream_cx_total"} {
			if _, ok := st[k]; !ok {
				t.Errorf("/stats lacks %s", k)
			}
		}
		_, body := adminDo(t, "GET", "/stats?filter="+`^cluster\.svc\.`)
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			if !strings.HasPrefix(line, "cluster.svc.") {
				t.Errorf("?filter returned %q", line)
				break
			}
		}
		if !strings.Contains(body, "cluster.svc.upstream_rq_total") {
			t.Error("?filter dropped matching stats")
		}
	})

	t.Run("stats json", func(t *testing.T) {
		_, body := adminDo(t, "GET", "/stats?format=json")
		var doc struct {
			Stats []struct {
				Name  string          `json:"name"`
				Value json.RawMessage `json:"value"`
			} `json:"stats"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("json: %v\n%.300s", err, body)
		}
		found := false
		for _, s := range doc.Stats {
			if s.Name == "http.ingress.downstream_rq_total" {
				found = true
				if n, _ := strconv.Atoi(string(s.Value)); n < 5 {
					t.Errorf("downstream_rq_total = %s", s.Value)
				}
			}
		}
		if !found {
			t.Error("json stats lack http.ingress.downstream_rq_total")
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		resp, body := adminDo(t, "GET", "/stats/prometheus")
		if resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
		if !strings.Contains(body, `envoy_cluster_upstream_rq_total{envoy_cluster_name="svc"}`) {
			t.Errorf("no envoy_cluster_upstream_rq_total{envoy_cluster_name=\"svc\"}")
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("prometheus text does not parse: %v", err)
		}
		f := fams["envoy_cluster_upstream_rq_total"]
		if f == nil || len(f.Metric) == 0 {
			t.Fatal("family envoy_cluster_upstream_rq_total missing")
		}
		ok := false
		for _, m := range f.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == "envoy_cluster_name" && lp.GetValue() == "svc" && m.GetCounter().GetValue() >= 5 {
					ok = true
				}
			}
		}
		if !ok {
			t.Errorf("envoy_cluster_upstream_rq_total for svc < 5 or unlabelled: %v", f)
		}
		if fams["envoy_http_downstream_rq_total"] == nil {
			t.Error("envoy_http_downstream_rq_total missing (http prefix tag)")
		}
	})

	t.Run("clusters", func(t *testing.T) {
		_, body := adminDo(t, "GET", "/clusters")
		want := "svc::" + up.Addr + "::health_flags::healthy"
		if !strings.Contains(body, want) {
			t.Errorf("/clusters lacks %q:\n%s", want, body)
		}
		if !regexp.MustCompile(`(?m)^svc::` + regexp.QuoteMeta(up.Addr) + `::rq_total::\d+$`).MatchString(body) {
			t.Errorf("/clusters lacks rq_total line:\n%s", body)
		}
	})

	t.Run("config_dump", func(t *testing.T) {
		_, body := adminDo(t, "GET", "/config_dump")
		var doc struct {
			Configs []map[string]json.RawMessage `json:"configs"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("json: %v", err)
		}
		types := map[string]bool{}
		for _, c := range doc.Configs {
			var ty string
			_ = json.Unmarshal(c["@type"], &ty)
			types[ty] = true
		}
		for _, ty := range []string{"BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump", "RoutesConfigDump"} {
			if !types["type.googleapis.com/envoy.admin.v3."+ty] {
				t.Errorf("config_dump lacks %s (has %v)", ty, types)
			}
		}
	})

	t.Run("listeners and server_info", func(t *testing.T) {
		_, body := adminDo(t, "GET", "/listeners")
		if !strings.Contains(body, "main::"+l.Addr("main")) {
			t.Errorf("/listeners: %q", body)
		}
		_, body = adminDo(t, "GET", "/server_info")
		var info struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal([]byte(body), &info); err != nil || info.State != "LIVE" {
			t.Errorf("/server_info state %q (%v)", info.State, err)
		}
	})

	t.Run("mutating endpoints refuse GET", func(t *testing.T) {
		for _, p := range []string{"/healthcheck/fail", "/healthcheck/ok", "/quitquitquit", "/logging?level=debug"} {
			if resp, _ := adminDo(t, "GET", p); resp.StatusCode != 405 {
				t.Errorf("GET %s → %d, want 405", p, resp.StatusCode)
			}
		}
		if resp, _ := adminDo(t, "GET", "/ready"); resp.StatusCode != 200 {
			t.Error("a refused GET changed state")
		}
	})

	t.Run("logging", func(t *testing.T) {
		// A rejected request is logged at debug level only.
		bad := "GET / HTTP/1.1\nHost: x\n\n"
		rawExchange(l.Addr("main"), bad, 10*time.Second, false)
		if strings.Contains(l.Stderr(), "level=DEBUG") {
			t.Fatal("debug logs at the default info level")
		}
		if resp, body := adminDo(t, "POST", "/logging?level=debug"); resp.StatusCode != 200 {
			t.Errorf("POST /logging?level=debug → %d %s", resp.StatusCode, body)
		}
		rawExchange(l.Addr("main"), bad, 10*time.Second, false)
		eventually(t, 5*time.Second, "debug logs", func() bool { return strings.Contains(l.Stderr(), "level=DEBUG") })
		if resp, _ := adminDo(t, "POST", "/logging?level=info"); resp.StatusCode != 200 {
			t.Errorf("POST /logging?level=info → %d", resp.StatusCode)
		}
		if resp, _ := adminDo(t, "POST", "/logging?level=nonsense"); resp.StatusCode == 200 {
			t.Error("POST /logging?level=nonsense accepted")
		}
	})

	t.Run("healthcheck fail and ok", func(t *testing.T) {
		adminDo(t, "POST", "/healthcheck/fail")
		if resp, _ := adminDo(t, "GET", "/ready"); resp.StatusCode != 503 {
			t.Errorf("/ready after healthcheck/fail → %d, want 503", resp.StatusCode)
		}
		adminDo(t, "POST", "/healthcheck/ok")
		if resp, _ := adminDo(t, "GET", "/ready"); resp.StatusCode != 200 {
			t.Errorf("/ready after healthcheck/ok → %d, want 200", resp.StatusCode)
		}
	})

	t.Run("quitquitquit", func(t *testing.T) {
		if resp, _ := adminDo(t, "POST", "/quitquitquit"); resp.StatusCode != 200 {
			t.Errorf("POST /quitquitquit → %d", resp.StatusCode)
		}
		if code := l.Wait(15 * time.Second); code != 0 {
			t.Errorf("exit status %d after /quitquitquit, want 0", code)
		}
	})
}

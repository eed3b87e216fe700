package xds_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/test/legatetest"
)

// legateCPBin is legate-cp next to legate (what `make build` made), or
// one built from this tree.
func legateCPBin(t *testing.T) string {
	t.Helper()
	if p, err := legatetest.Find("legate-cp"); err == nil {
		return p[0]
	}
	p := filepath.Join(t.TempDir(), "legate-cp")
	cmd := exec.Command("go", "build", "-o", p, "./cmd/legate-cp")
	cmd.Dir = legatetest.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building legate-cp: %v\n%s", err, out)
	}
	return p
}

// LegateCP is a running legate-cp.
type LegateCP struct {
	XDSPort, HTTPPort, ListenPort int
	stderr                        legatetest.SyncBuffer
}

func startLegateCP(t *testing.T) *LegateCP {
	t.Helper()
	bin := legateCPBin(t)
	for attempt := 0; ; attempt++ {
		cp, err := tryLegateCP(t, bin)
		if err == nil {
			return cp
		}
		// Another process may take a port between FreePort and the bind.
		if attempt == 2 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("starting legate-cp: %v", err)
		}
	}
}

func tryLegateCP(t *testing.T, bin string) (*LegateCP, error) {
	cp := &LegateCP{XDSPort: legatetest.FreePort(t), HTTPPort: legatetest.FreePort(t), ListenPort: legatetest.FreePort(t)}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--xds-address", "127.0.0.1:"+strconv.Itoa(cp.XDSPort),
		"--http-address", "127.0.0.1:"+strconv.Itoa(cp.HTTPPort),
		"--listen-port", strconv.Itoa(cp.ListenPort))
	cmd.Stderr = &cp.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	stop := func() { cancel(); <-done }
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, err := get(cp.URL("/healthz")); err == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("legate-cp stderr:\n%s", cp.stderr.String())
				}
			})
			return cp, nil
		}
		select {
		case <-done:
			cancel()
			return nil, fmt.Errorf("legate-cp exited: %v\n%s", waitErr, cp.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("legate-cp /healthz did not answer\n%s", cp.stderr.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// URL is legate-cp's HTTP API URL for path.
func (cp *LegateCP) URL(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(cp.HTTPPort) + path
}

// call sends method to the HTTP API and requires a 2xx answer.
func (cp *LegateCP) call(t testing.TB, method, path string, body any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, cp.URL(path), r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
}

// register puts instance id of service at u's port with ttl.
func (cp *LegateCP) register(t testing.TB, service, id string, u *Upstream, ttl string) {
	t.Helper()
	cp.call(t, http.MethodPut, "/v1/services/"+service+"/instances/"+id,
		map[string]any{"address": "127.0.0.1", "port": u.Port, "ttl": ttl})
}

// waitAnswers polls url until every upstream in want has answered.
func waitAnswers(t testing.TB, c *http.Client, url string, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	var last string
	eventually(t, waitTimeout, func() bool {
		a, err := fetch(c, url)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%d %.100q", a.Status, a.Body)
		if a.Status == http.StatusOK {
			seen[a.Body] = true
		}
		for _, w := range want {
			if !seen[w] {
				return false
			}
		}
		return true
	}, func() string {
		return fmt.Sprintf("GET %s: want answers from %v, saw %v; last %s", url, want, seen, last)
	})
}

// TestLegateCP runs legate against legate-cp's embedded default (the front
// proxy with EDS clusters service1 and service2): instances registered over
// HTTP become endpoints, and one that stops heartbeating leaves the pool
// once its TTL passes.
func TestLegateCP(t *testing.T) {
	t.Parallel()
	cp := startLegateCP(t)
	s1a, s1b, s2 := startUpstream(t, "s1a"), startUpstream(t, "s1b"), startUpstream(t, "s2")
	dying := startUpstream(t, "dying")
	cp.register(t, "service1", "a", s1a, "60s")
	cp.register(t, "service2", "a", s2, "60s")

	l := startLegate(t, func(admin int) string { return modes[0].Bootstrap(cp.XDSPort, admin) })
	client := proxyClient()
	base := "http://127.0.0.1:" + strconv.Itoa(cp.ListenPort)
	waitAnswers(t, client, base+"/service/1", "s1a")
	waitAnswers(t, client, base+"/service/2", "s2")
	l.waitStat(t, "control_plane.connected_state", "== 1", func(v int64) bool { return v == 1 })

	// A new instance is learnt.
	cp.register(t, "service1", "b", s1b, "60s")
	waitAnswers(t, client, base+"/service/1", "s1a", "s1b")

	// An instance with a short lease, heartbeating until legate uses it.
	// The lease is many heartbeats long, so a loaded machine does not
	// expire it before legate has used it.
	cp.register(t, "service1", "dying", dying, "3s")
	stopBeat := make(chan struct{})
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopBeat:
				return
			case <-tick.C:
				req, _ := http.NewRequest(http.MethodPut, cp.URL("/v1/services/service1/instances/dying/heartbeat"), nil)
				if resp, err := adminClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	waitAnswers(t, client, base+"/service/1", "dying")
	close(stopBeat)
	<-beatDone

	// It stops heartbeating: legate-cp expires it and legate drops the host.
	host := fmt.Sprintf("service1::127.0.0.1:%d::", dying.Port)
	eventually(t, waitTimeout, func() bool {
		body, err := get(l.AdminURL("/clusters"))
		return err == nil && !strings.Contains(body, host)
	}, func() string { return "legate's /clusters still lists the expired instance " + host })
	before := dying.Requests.Load()
	for i := 0; i < 30; i++ {
		a, err := fetch(client, base+"/service/1")
		if err != nil || a.Status != http.StatusOK {
			t.Fatalf("GET /service/1 after the expiry: %v %d %q", err, a.Status, a.Body)
		}
	}
	if n := dying.Requests.Load() - before; n != 0 {
		t.Errorf("the expired instance got %d more requests", n)
	}
	// And legate-cp says who it serves.
	if body, err := get(cp.URL("/v1/nodes")); err != nil || !strings.Contains(body, nodeID) {
		t.Errorf("legate-cp /v1/nodes does not list node %q: %v %.300s", nodeID, err, body)
	}
}

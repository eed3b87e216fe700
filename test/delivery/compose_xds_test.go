package delivery

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// xdsTTL is the lease examples/front-proxy-xds/docker-compose.yml gives
// each replica (--ttl 5s).
const xdsTTL = 5 * time.Second

// TestComposeXDSCaseStudy deploys examples/front-proxy-xds: legate-cp, a
// front proxy that takes everything over ADS from it, and the demo service
// scaled to three replicas of each service, each registering its own
// container address. Three distinct replicas of each must answer through
// the proxy. Then one service1 replica is killed with SIGKILL, so it cannot
// deregister: once its lease runs out (within the TTL plus a margin) the
// proxy must have dropped it, and every request after that must succeed on
// the other two. Everything is torn down afterwards.
func TestComposeXDSCaseStudy(t *testing.T) {
	requireCompose(t)
	bld := debBuild(t)
	suffix := runSuffix()
	project := "legate-e2e-xds-" + suffix
	tag := "e2e-xds-" + suffix
	environ := env(t,
		"COMPOSE_PROJECT_NAME="+project,
		"LEGATE_IMAGE_TAG="+tag,
		// 0: Docker picks free host ports; docker-compose port tells which.
		"LEGATE_HTTP_PORT=0", "LEGATE_ADMIN_PORT=0", "LEGATE_CP_PORT=0",
	)
	composeDir := filepath.Join(bld.dir, "examples", "front-proxy-xds")
	compose := func(args ...string) string {
		return run(t, composeDir, environ, 3*time.Minute, "docker-compose", args...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := tryRun(composeDir, environ, time.Minute, "docker-compose", "ps")
			logs, _ := tryRun(composeDir, environ, time.Minute, "docker-compose", "logs", "--no-color", "--tail", "100")
			t.Logf("docker-compose ps:\n%s\ndocker-compose logs:\n%s", out, logs)
		}
		if out, err := tryRun(composeDir, environ, 3*time.Minute, "docker-compose", "down", "-v", "--remove-orphans"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
		// Only this run's tags; the images stay under their other tags. Images
		// that a rebuild left without any tag are Legate's own garbage.
		exec.Command("docker", "rmi", "legate:"+tag, "legate-demo-service:"+tag, "legate-cp:"+tag, "legate-front-proxy-xds:"+tag).Run()
		exec.Command("docker", "image", "prune", "-f", "--filter", "label=org.opencontainers.image.source=https://github.com/legate-proxy/legate").Run()
	})

	// The copy's bin/ is already built by make deb: this is the docker
	// builds, and a go build that is all cache hits.
	out := run(t, bld.dir, environ, 10*time.Minute, "make", "image", "IMAGE_TAG="+tag)
	if !strings.Contains(out, "legate-cp:"+tag) {
		t.Fatalf("make image did not build legate-cp:%s:\n%s", tag, out)
	}
	compose("up", "-d", "--build")
	compose("up", "-d", "--no-recreate", "--scale", "service1=3", "--scale", "service2=3")

	proxy := "http://" + publishedAddr(t, compose("port", "front-proxy", "8080"))
	admin := "http://" + publishedAddr(t, compose("port", "front-proxy", "9901"))
	registry := "http://" + publishedAddr(t, compose("port", "control-plane", "18001"))
	client := &http.Client{Timeout: 10 * time.Second}

	// A replica's hostname is its container's short id: the replicas that
	// must answer are exactly the containers docker-compose started.
	replicas := map[string][]string{}
	for _, svc := range []string{"service1", "service2"} {
		ids := strings.Fields(compose("ps", "-q", svc))
		if len(ids) != 3 {
			t.Fatalf("%s has %d containers, want 3: %v", svc, len(ids), ids)
		}
		replicas[svc] = ids
	}
	for _, id := range []string{"1", "2"} {
		svc := "service" + id
		var want []string
		for _, c := range replicas[svc] {
			want = append(want, c[:12])
		}
		sort.Strings(want)
		seen := map[string]int{}
		var lastErr error
		// Registration, the EDS push and the first listener all happen
		// after up returns; the deadline only bounds a broken deployment.
		deadline := time.Now().Add(90 * time.Second)
		for len(seen) < 3 && time.Now().Before(deadline) {
			r, err := askService(client, proxy, id)
			if err != nil {
				lastErr = err
				time.Sleep(250 * time.Millisecond)
				continue
			}
			seen[r.Hostname]++
		}
		got := slices.Sorted(maps.Keys(seen))
		if !slices.Equal(got, want) {
			t.Fatalf("%s: replicas %v answered through the proxy, want the three containers %v (last error: %v)", svc, seen, want, lastErr)
		}
		t.Logf("%s: 3 replicas answered: %v", svc, seen)
	}

	victim := replicas["service1"][0]
	ip := strings.TrimSpace(run(t, "", environ, time.Minute, "docker", "inspect", "-f",
		"{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", victim))
	if ip == "" {
		t.Fatalf("no IP address for container %s", victim)
	}
	hostAddr := "service1::" + ip + ":8080::"
	if body, err := get(client, admin+"/clusters"); err != nil || !strings.Contains(body, hostAddr) {
		t.Fatalf("before the kill the proxy does not list %s (err %v):\n%s", hostAddr, err, body)
	}

	// SIGKILL: no deregistration, so only the lease's expiry removes it.
	run(t, "", environ, time.Minute, "docker", "kill", victim)
	killed := time.Now()

	// Requests keep going while the lease runs out; those that the proxy
	// still sends to the dead replica fail, which is what the lease bounds.
	// The margin covers legate-cp's expiry sweep, the push and a slow,
	// shared machine.
	failed := 0
	deadline := killed.Add(xdsTTL + 15*time.Second)
	for {
		if _, err := askService(client, proxy, "1"); err != nil {
			failed++
		}
		body, err := get(client, admin+"/clusters")
		if err == nil && strings.Contains(body, "service1::") && !strings.Contains(body, hostAddr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the kill (lease %v) the proxy still lists %s (err %v):\n%s",
				time.Since(killed).Round(time.Millisecond), xdsTTL, hostAddr, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the killed replica %s left the proxy's pool %v after SIGKILL (lease %v); %d requests failed meanwhile",
		victim[:12], time.Since(killed).Round(time.Millisecond), xdsTTL, failed)

	// legate-cp's registry agrees: the lease expired.
	body, err := get(client, registry+"/v1/services/service1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, victim[:12]) {
		t.Errorf("legate-cp still lists the killed replica %s:\n%s", victim[:12], body)
	}

	// From now on every request succeeds, on the two live replicas only.
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		r, err := askService(client, proxy, "1")
		if err != nil {
			t.Fatalf("request %d after the replica was dropped: %v", i, err)
		}
		seen[r.Hostname]++
	}
	want := []string{replicas["service1"][1][:12], replicas["service1"][2][:12]}
	sort.Strings(want)
	if got := slices.Sorted(maps.Keys(seen)); !slices.Equal(got, want) {
		t.Errorf("after killing %s, replicas %v answered, want the other two %v", victim[:12], seen, want)
	}
	t.Logf("after killing %s: 30/30 requests succeeded, answered by %v", victim[:12], seen)
}

// serviceReply is demo-service's answer.
type serviceReply struct {
	Hostname  string `json:"hostname"`
	ServiceID string `json:"serviceid"`
	Success   bool   `json:"success"`
}

// askService sends GET /service/{id} through the proxy and checks that the
// service with that id answered.
func askService(c *http.Client, proxy, id string) (serviceReply, error) {
	var r serviceReply
	body, err := get(c, proxy+"/service/"+id)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return r, err
	}
	if !r.Success || r.ServiceID != id || r.Hostname == "" {
		return r, fmt.Errorf("unexpected answer %q", body)
	}
	return r, nil
}

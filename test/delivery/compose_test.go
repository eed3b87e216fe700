package delivery

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/test/legatetest"
)

func TestPipelineRejectsUnknownStage(t *testing.T) {
	out, err := tryRun(legatetest.RepoRoot(), env(t), time.Minute, "bash", "ci/pipeline.sh", "no-such-stage")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "unknown stage 'no-such-stage'") {
		t.Fatalf("ci/pipeline.sh no-such-stage: %v\n%s", err, out)
	}
}

// TestComposeCaseStudy is the case study as the Jenkins pipeline deploys it,
// driven through ci/pipeline.sh in a copy of the tree: images, docker-compose
// up, scale service1 and service2 to three, smoke test (three distinct
// replicas of each answer through the proxy). Then it stops one service1
// replica and checks that, once DNS has dropped it, every request still
// succeeds on the other two. Everything is torn down afterwards.
func TestComposeCaseStudy(t *testing.T) {
	requireCompose(t)
	bld := debBuild(t)
	suffix := runSuffix()
	project := "legate-e2e-" + suffix
	tag := "e2e-" + suffix
	environ := env(t,
		"COMPOSE_PROJECT_NAME="+project,
		"LEGATE_IMAGE_TAG="+tag,
		// 0: Docker picks free host ports; the script and this test ask
		// docker-compose which.
		"LEGATE_HTTP_PORT=0", "LEGATE_HTTPS_PORT=0", "LEGATE_ADMIN_PORT=0",
		"SMOKE_TIMEOUT=90",
	)
	pipeline := func(stages ...string) (string, error) {
		return tryRun(bld.dir, environ, 10*time.Minute, "bash", append([]string{"ci/pipeline.sh"}, stages...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := pipeline("logs")
			t.Logf("ci/pipeline.sh logs:\n%s", out)
		}
		if out, err := pipeline("teardown"); err != nil {
			t.Errorf("ci/pipeline.sh teardown: %v\n%s", err, out)
		}
		// Only this run's tags; the images stay under their other tags. Images
		// that a rebuild left without any tag are Legate's own garbage.
		exec.Command("docker", "rmi", "legate:"+tag, "legate-demo-service:"+tag, "legate-cp:"+tag, "legate-front-proxy:"+tag).Run()
		exec.Command("docker", "image", "prune", "-f", "--filter", "label=org.opencontainers.image.source=https://github.com/legate-proxy/legate").Run()
	})

	out, err := pipeline("image", "deploy", "scale", "smoke")
	if err != nil {
		t.Fatalf("ci/pipeline.sh image deploy scale smoke: %v\n%s", err, out)
	}
	t.Logf("pipeline:\n%s", grepLines(out, "==> "))
	for _, id := range []string{"1", "2"} {
		if !strings.Contains(out, "service"+id+": 3 replicas answered") {
			t.Errorf("smoke stage did not see three replicas of service%s", id)
		}
	}

	composeDir := filepath.Join(bld.dir, "examples", "front-proxy")
	compose := func(args ...string) string {
		return run(t, composeDir, environ, 2*time.Minute, "docker-compose", args...)
	}
	proxy := "http://" + publishedAddr(t, compose("port", "front-proxy", "8080"))
	admin := "http://" + publishedAddr(t, compose("port", "front-proxy", "9901"))

	ids := strings.Fields(compose("ps", "-q", "service1"))
	if len(ids) != 3 {
		t.Fatalf("service1 has %d containers, want 3: %v", len(ids), ids)
	}
	victim := ids[0]
	ip := strings.TrimSpace(run(t, "", environ, time.Minute, "docker", "inspect", "-f",
		"{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", victim))
	if ip == "" {
		t.Fatalf("no IP address for container %s", victim)
	}
	run(t, "", environ, time.Minute, "docker", "stop", "-t", "2", victim)

	// Wait until the proxy's DNS refresh has dropped the stopped replica
	// (dns_refresh_rate is 1s in the compose config).
	client := &http.Client{Timeout: 10 * time.Second}
	hostAddr := "service1::" + ip + ":8080::"
	deadline := time.Now().Add(60 * time.Second)
	for {
		body, err := get(client, admin+"/clusters")
		if err == nil && strings.Contains(body, "service1::") && !strings.Contains(body, hostAddr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the proxy still lists %s (err %v):\n%s", hostAddr, err, body)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Every request now succeeds, and only the two live replicas answer.
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		body, err := get(client, proxy+"/service/1")
		if err != nil {
			t.Fatalf("request %d after the replica was dropped: %v", i, err)
		}
		var reply struct {
			Hostname  string `json:"hostname"`
			ServiceID string `json:"serviceid"`
			Success   bool   `json:"success"`
		}
		if err := json.Unmarshal([]byte(body), &reply); err != nil || !reply.Success || reply.ServiceID != "1" {
			t.Fatalf("request %d: unexpected answer %q (%v)", i, body, err)
		}
		seen[reply.Hostname]++
	}
	var hosts []string
	for h := range seen {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	if len(hosts) != 2 {
		t.Errorf("after stopping one of three replicas, %d answered (%v), want the other 2", len(hosts), seen)
	}
	if seen[victim[:12]] > 0 {
		t.Errorf("the stopped replica %s still answered", victim[:12])
	}
	t.Logf("after stopping %s: 30/30 requests succeeded, answered by %v", victim[:12], seen)
}

// publishedAddr turns docker-compose port's "0.0.0.0:49153" into
// 127.0.0.1:49153.
func publishedAddr(t *testing.T, mapping string) string {
	t.Helper()
	mapping = strings.TrimSpace(mapping)
	i := strings.LastIndex(mapping, ":")
	if i < 0 || i == len(mapping)-1 {
		t.Fatalf("docker-compose port printed %q", mapping)
	}
	return "127.0.0.1:" + mapping[i+1:]
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: status %d: %s", url, resp.StatusCode, b)
	}
	return string(b), nil
}

func firstLine(s string) string {
	return strings.SplitN(strings.TrimSpace(s), "\n", 2)[0]
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// requireCompose skips a test that needs docker-compose, a running Docker
// Engine and curl when the machine lacks one of them.
func requireCompose(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("SKIP: docker-compose is not installed")
	}
	if out, err := tryRun("", os.Environ(), time.Minute, "docker", "info"); err != nil {
		t.Skipf("SKIP: no Docker Engine (docker info: %v %s)", err, firstLine(out))
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("SKIP: curl is not installed")
	}
}

// runSuffix names one run's compose project and image tags, so runs never
// share containers or tags.
func runSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

package admin

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestProfilers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "envoy.prof")
	h := New(Deps{ProfilePath: path})
	post := func(url string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, url, nil))
		return rec
	}
	for _, ep := range []string{"/cpuprofiler", "/heapprofiler"} {
		os.Remove(path)
		if rec := post(ep + "?enable=maybe"); rec.Code != http.StatusBadRequest {
			t.Errorf("%s?enable=maybe: %d", ep, rec.Code)
		}
		if rec := post(ep + "?enable=y"); rec.Code != 200 || rec.Body.String() != "OK\n" {
			t.Fatalf("%s?enable=y: %d %s", ep, rec.Code, rec.Body)
		}
		if rec := post(ep + "?enable=n"); rec.Code != 200 {
			t.Fatalf("%s?enable=n: %d %s", ep, rec.Code, rec.Body)
		}
		// A gzipped pprof protobuf.
		if b, err := os.ReadFile(path); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s wrote %d bytes (%v), not a pprof profile", ep, len(b), err)
		}
	}
	if rec := post("/heapprofiler?enable=n"); rec.Code != http.StatusBadRequest {
		t.Errorf("stopping a stopped heap profiler: %d", rec.Code)
	}
}

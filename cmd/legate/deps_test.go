package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The proxy binary links none of the tooling around it (internal/tooling:
// legate-cp's server, the demo's supervisor): what runs in production is
// only the proxy.
func TestProxyDoesNotLinkTooling(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "/internal/tooling") {
			t.Errorf("bin/legate links %s", dep)
		}
	}
}

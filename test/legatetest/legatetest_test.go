package legatetest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAdminPort(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         int
		wantErr      bool
	}{
		{"flow", "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9901}}}\n", 9901, false},
		{"block", "static_resources: {}\nadmin:\n  address:\n    socket_address:\n      address: 127.0.0.1\n      port_value: 15000\n", 15000, false},
		{"no admin", "static_resources: {}\n", 0, true},
		{"no port", "admin: {address: {socket_address: {address: 127.0.0.1}}}\n", 0, true},
		{"not yaml", "admin: [", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := adminPort(tc.config)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("adminPort = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	legate := filepath.Join(dir, "my-legate")
	for _, f := range []string{legate, filepath.Join(dir, "legate-demo")} {
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LEGATE_BIN", legate)
	got, err := Find("legate", "legate-demo")
	if err != nil || len(got) != 2 || got[0] != legate || got[1] != filepath.Join(dir, "legate-demo") {
		t.Errorf("Find = %q, %v; want %s and legate-demo beside it", got, err, legate)
	}
	if _, err := Find("legate", "demo-service"); err == nil {
		t.Error("Find of a missing demo-service: no error")
	}
}

package listener

import "testing"

func TestStatAddressMatchesEnvoy(t *testing.T) {
	for _, tt := range []struct {
		host string
		port uint32
		want string
	}{
		{"0.0.0.0", 8080, "0.0.0.0_8080"},
		{"127.0.0.1", 10000, "127.0.0.1_10000"},
		{"::", 8443, "[__]_8443"},
		{"::1", 80, "[__1]_80"},
	} {
		if got := statAddress(tt.host, tt.port); got != tt.want {
			t.Errorf("statAddress(%q, %d) = %q, want %q", tt.host, tt.port, got, tt.want)
		}
	}
}

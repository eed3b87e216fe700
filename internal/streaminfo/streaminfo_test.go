package streaminfo

import "testing"

func TestResponseFlagsString(t *testing.T) {
	tests := []struct {
		f    ResponseFlags
		want string
	}{
		{0, "-"},
		{NoRouteFound, "NR"},
		{UpstreamConnectionFailure | UpstreamRetryLimitExceeded, "UF,URX"},
		{NoHealthyUpstream | UpstreamRequestTimeout | DownstreamConnectionTermination, "UH,UT,DC"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%d: got %q want %q", tt.f, got, tt.want)
		}
	}
}

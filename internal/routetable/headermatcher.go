package routetable

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/legate-proxy/legate/internal/http/message"
)

// HeaderMatcher is a compiled envoy.config.route.v3.HeaderMatcher, exported
// so that other config consumers (access-log header_filter) match headers
// exactly as routes do.
type HeaderMatcher struct {
	m headerMatcher
}

// CompileHeaderMatcher compiles h; path names it in errors.
func CompileHeaderMatcher(h *routev3.HeaderMatcher, path string) (*HeaderMatcher, error) {
	m, err := compileHeaderMatcher(h, path)
	if err != nil {
		return nil, err
	}
	return &HeaderMatcher{m: m}, nil
}

// Matches reports whether req's headers satisfy the matcher. A nil req (a
// TCP connection) has no headers at all, not even pseudo-headers.
func (m *HeaderMatcher) Matches(req *message.Request) bool {
	if req == nil {
		return m.m.matchValue("", false)
	}
	return m.m.matches(req)
}

package hcm

import (
	"math/rand/v2"

	"github.com/legate-proxy/legate/internal/httpfilter"
)

// The stream's side of the filter contract (httpfilter.Callbacks):
// routing, re-routing and local replies.

// firstMatch routes a new stream; the route it finds also decides which
// filters run (httpfilter.Stream.ChainConfig).
func (s *stream) firstMatch() {
	s.matchRoute()
	s.fs.ChainConfig = s.fs.PerFilter()
}

// matchRoute matches the request against the current route table and
// picks the weighted cluster, so filters before the router see the
// entry's per-filter config. A listener that went live on
// initial_fetch_timeout has no table yet: no route, which the router
// filter answers 404 NR.
func (s *stream) matchRoute() {
	fs := &s.fs
	fs.Route, fs.VirtualHost, fs.WeightedCluster = nil, nil, nil
	if t := s.cfg.Routes.Load(); t != nil {
		fs.Route, fs.VirtualHost = t.Match(fs.Request)
	}
	s.info.RouteName = ""
	if r := fs.Route; r != nil {
		s.info.RouteName = r.Name
		if r.Weighted() {
			fs.WeightedCluster = r.PickWeighted(rand.Uint64())
		}
	}
}

// ClearRouteCache matches the route again after a filter changed the
// request (Envoy's clearRouteCache; the match is done at once rather than
// when the route is next read).
func (s *stream) ClearRouteCache(*httpfilter.Stream) { s.matchRoute() }

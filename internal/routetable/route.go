package routetable

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter/perroute"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Route is a compiled route. Its exported fields are read-only.
type Route struct {
	Name   string
	Action Action
	// Timeout covers the whole upstream exchange including retries
	// (default 15 s; 0 disables it).
	Timeout time.Duration
	// IdleTimeout is the route's idle_timeout when HasIdleTimeout (0
	// disables); otherwise the connection manager's stream_idle_timeout
	// applies.
	IdleTimeout    time.Duration
	HasIdleTimeout bool
	// Retry is the route's retry policy, or the virtual host's; nil means
	// no retries.
	Retry *RetryPolicy
	// ClusterNotFoundStatus is the reply when the cluster is unknown at
	// request time (cluster_not_found_response_code, default 503).
	ClusterNotFoundStatus int
	// Decorator is the route's decorator (span naming), nil when unset.
	Decorator *Decorator
	// PerFilter is the route's typed_per_filter_config over its virtual
	// host's: per filter, the route's entry wins.
	PerFilter perroute.Set
	// Hash is the route's hash_policy, nil when unset.
	Hash *HashPolicy

	match routeMatch

	// Forward.
	clusterKind   clusterKind
	clusterName   string // static cluster, or the header for cluster_header
	cluster       *cluster.Ref
	weighted      []*WeightedCluster
	totalWeight   uint64
	prefixRewrite string
	hasPrefixRW   bool
	regexRewrite  *regexRewrite
	hostRewrite   string
	autoHostRW    bool
	upgrades      []upgradeConfig
	clusters      ClusterSource

	// Redirect.
	redirect *redirect

	// DirectResponse.
	directStatus int
	directBody   []byte

	mut                  *levelMutations
	vhMut                *levelMutations
	global               *levelMutations
	mostSpecificWins     bool
	insertOriginalPath   bool
	hasRequestMutations  bool
	hasResponseMutations bool
}

// Decorator is Route.decorator: the operation names the request's span,
// and, when Propagate (default true), the connection manager returns it in
// x-envoy-decorator-operation so the caller can name its own span alike.
type Decorator struct {
	Operation string
	Propagate bool
}

type clusterKind uint8

const (
	clusterStatic clusterKind = iota
	clusterHeader
	clusterWeighted
)

type upgradeConfig struct {
	typ     string // lower-case
	enabled bool
}

// WeightedCluster is one entry of weighted_clusters.
type WeightedCluster struct {
	Name   string
	Weight uint32
	// PerFilter is the entry's typed_per_filter_config over its route's
	// (and virtual host's): the most specific entry wins.
	PerFilter perroute.Set

	cluster *cluster.Ref
	mut     *levelMutations
}

func (t *Table) compileRoute(r *routev3.Route, vh *VirtualHost, path string, maxBody uint32) (*Route, error) {
	rt := &Route{
		Name:                  r.GetName(),
		Timeout:               DefaultTimeout,
		ClusterNotFoundStatus: 503,
		Retry:                 vh.Retry,
		vhMut:                 vh.mut,
		global:                t.global,
		clusters:              t.opts.Clusters,
		insertOriginalPath:    !t.opts.SuppressEnvoyHeaders,
	}
	var err error
	if r.GetMatch() == nil {
		return nil, fmt.Errorf("%s.match: is required", path)
	}
	if rt.match, err = compileRouteMatch(r.GetMatch(), path+".match"); err != nil {
		return nil, err
	}
	if rt.mut, err = compileLevel(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(),
		r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove(), path+"."); err != nil {
		return nil, err
	}
	own, err := perroute.Compile(r.GetTypedPerFilterConfig(), path+".typed_per_filter_config")
	if err != nil {
		return nil, err
	}
	rt.PerFilter = perroute.Override(vh.PerFilter, own)
	if d := r.GetDecorator(); d != nil {
		if d.GetOperation() == "" {
			return nil, fmt.Errorf("%s.decorator.operation: must not be empty", path)
		}
		rt.Decorator = &Decorator{Operation: d.GetOperation(), Propagate: d.GetPropagate() == nil || d.GetPropagate().GetValue()}
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		rt.Action = ActionForward
		if err := t.compileRouteAction(rt, a.Route, path+".route"); err != nil {
			return nil, err
		}
	case *routev3.Route_Redirect:
		rt.Action = ActionRedirect
		if rt.redirect, err = compileRedirect(a.Redirect, &rt.match, path+".redirect"); err != nil {
			return nil, err
		}
	case *routev3.Route_DirectResponse:
		rt.Action = ActionDirectResponse
		dr := a.DirectResponse
		if dr.GetStatus() < 200 || dr.GetStatus() > 599 {
			return nil, fmt.Errorf("%s.direct_response.status: %d is not in [200, 600)", path, dr.GetStatus())
		}
		rt.directStatus = int(dr.GetStatus())
		if dr.GetBody() != nil {
			if rt.directBody, err = readDataSource(dr.GetBody(), path+".direct_response.body"); err != nil {
				return nil, err
			}
			if uint64(len(rt.directBody)) > uint64(maxBody) {
				return nil, fmt.Errorf("%s.direct_response.body: response body size is %d bytes; maximum is %d", path, len(rt.directBody), maxBody)
			}
		}
	default:
		return nil, fmt.Errorf("%s: one of route, redirect or direct_response is required", path)
	}
	rt.hasRequestMutations = hasReq(rt.mut) || hasReq(rt.vhMut) || hasReq(rt.global)
	rt.hasResponseMutations = hasResp(rt.mut) || hasResp(rt.vhMut) || hasResp(rt.global)
	for _, wc := range rt.weighted {
		rt.hasRequestMutations = rt.hasRequestMutations || hasReq(wc.mut)
		rt.hasResponseMutations = rt.hasResponseMutations || hasResp(wc.mut)
	}
	return rt, nil
}

func hasReq(l *levelMutations) bool  { return l != nil && !l.req.empty() }
func hasResp(l *levelMutations) bool { return l != nil && !l.resp.empty() }

func (t *Table) lookupCluster(name, path string) (*cluster.Ref, error) {
	if t.opts.ValidateClusters && !t.opts.Clusters.Has(name) {
		return nil, fmt.Errorf("%s: unknown cluster %q", path, name)
	}
	return t.opts.Clusters.Ref(name), nil
}

func (t *Table) compileRouteAction(rt *Route, ra *routev3.RouteAction, path string) error {
	var err error
	switch cs := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		rt.clusterKind, rt.clusterName = clusterStatic, cs.Cluster
		if cs.Cluster == "" {
			return fmt.Errorf("%s.cluster: must not be empty", path)
		}
		if rt.cluster, err = t.lookupCluster(cs.Cluster, path+".cluster"); err != nil {
			return err
		}
	case *routev3.RouteAction_ClusterHeader:
		if cs.ClusterHeader == "" {
			return fmt.Errorf("%s.cluster_header: must not be empty", path)
		}
		rt.clusterKind, rt.clusterName = clusterHeader, strings.ToLower(cs.ClusterHeader)
	case *routev3.RouteAction_WeightedClusters:
		rt.clusterKind = clusterWeighted
		wcs := cs.WeightedClusters
		wpath := path + ".weighted_clusters"
		if len(wcs.GetClusters()) == 0 {
			return fmt.Errorf("%s.clusters: at least one cluster is required", wpath)
		}
		var sum uint64
		for i, c := range wcs.GetClusters() {
			cpath := fmt.Sprintf("%s.clusters[%d]", wpath, i)
			if c.GetName() == "" {
				return fmt.Errorf("%s.name: must not be empty", cpath)
			}
			wc := &WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue()}
			own, err := perroute.Compile(c.GetTypedPerFilterConfig(), cpath+".typed_per_filter_config")
			if err != nil {
				return err
			}
			wc.PerFilter = perroute.Override(rt.PerFilter, own)
			if wc.cluster, err = t.lookupCluster(c.GetName(), cpath+".name"); err != nil {
				return err
			}
			if wc.mut, err = compileLevel(c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove(),
				c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove(), cpath+"."); err != nil {
				return err
			}
			sum += uint64(wc.Weight)
			rt.weighted = append(rt.weighted, wc)
		}
		//lint:ignore SA1019 total_weight is deprecated but still accepted, as in Envoy.
		if tw := wcs.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != sum {
			return fmt.Errorf("%s.total_weight: the weights of the clusters add up to %d, not %d", wpath, sum, tw.GetValue())
		}
		if sum == 0 {
			return fmt.Errorf("%s: the weights of the clusters must add up to more than 0", wpath)
		}
		rt.totalWeight = sum
	default:
		return fmt.Errorf("%s: one of cluster, cluster_header or weighted_clusters is required", path)
	}
	switch ra.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_SERVICE_UNAVAILABLE:
		rt.ClusterNotFoundStatus = 503
	case routev3.RouteAction_NOT_FOUND:
		rt.ClusterNotFoundStatus = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		rt.ClusterNotFoundStatus = 500
	}
	if ra.GetPrefixRewrite() != "" && ra.GetRegexRewrite() != nil {
		return fmt.Errorf("%s: specify only one of prefix_rewrite and regex_rewrite", path)
	}
	if ra.GetPrefixRewrite() != "" {
		// On a safe_regex route the whole path is the matched prefix.
		rt.prefixRewrite, rt.hasPrefixRW = ra.GetPrefixRewrite(), true
	}
	if rr := ra.GetRegexRewrite(); rr != nil {
		if rt.regexRewrite, err = compileRegexRewrite(rr, path+".regex_rewrite"); err != nil {
			return err
		}
	}
	switch hr := ra.GetHostRewriteSpecifier().(type) {
	case *routev3.RouteAction_HostRewriteLiteral:
		rt.hostRewrite = hr.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		rt.autoHostRW = hr.AutoHostRewrite.GetValue()
	case nil:
	default:
		return fmt.Errorf("%s: only host_rewrite_literal and auto_host_rewrite are supported", path)
	}
	if d := ra.GetTimeout(); d != nil {
		rt.Timeout = d.AsDuration()
	}
	if d := ra.GetIdleTimeout(); d != nil {
		rt.IdleTimeout, rt.HasIdleTimeout = d.AsDuration(), true
	}
	if rp := ra.GetRetryPolicy(); rp != nil {
		if rt.Retry, err = compileRetryPolicy(rp, path+".retry_policy"); err != nil {
			return err
		}
	}
	if hp := ra.GetHashPolicy(); len(hp) > 0 {
		if rt.Hash, err = compileHashPolicy(hp, path+".hash_policy"); err != nil {
			return err
		}
	}
	for i, u := range ra.GetUpgradeConfigs() {
		if u.GetUpgradeType() == "" {
			return fmt.Errorf("%s.upgrade_configs[%d].upgrade_type: must not be empty", path, i)
		}
		uc := upgradeConfig{typ: strings.ToLower(u.GetUpgradeType()), enabled: true}
		if e := u.GetEnabled(); e != nil {
			uc.enabled = e.GetValue()
		}
		for _, prev := range rt.upgrades {
			if prev.typ == uc.typ {
				return fmt.Errorf("%s.upgrade_configs[%d]: duplicate upgrade type %q", path, i, u.GetUpgradeType())
			}
		}
		rt.upgrades = append(rt.upgrades, uc)
	}
	return nil
}

// UpgradeEnabled reports whether an Upgrade of upgradeType may pass on
// this route. hcmDefault is the connection manager's enabled flag for that
// type; the caller only asks for types the connection manager lists (as in
// Envoy, a route cannot enable an upgrade the connection manager does not
// configure). A route's upgrade_configs entry overrides hcmDefault.
func (r *Route) UpgradeEnabled(upgradeType string, hcmDefault bool) bool {
	for i := range r.upgrades {
		if equalFoldASCII(upgradeType, r.upgrades[i].typ) {
			return r.upgrades[i].enabled
		}
	}
	return hcmDefault
}

// AutoHostRewrite reports whether the route has auto_host_rewrite: the
// upstream :authority becomes the chosen host's hostname (when it has one).
func (r *Route) AutoHostRewrite() bool { return r.autoHostRW }

// Cluster picks the upstream cluster for req. For weighted clusters rnd
// chooses the entry (rnd % total weight) and wc is that entry, to be passed
// to ApplyRequest/ApplyResponse. c is nil when the cluster does not exist
// (cluster_header naming an unknown cluster or carrying no value): reply
// ClusterNotFoundStatus with response flag NC. name is the cluster's name
// ("" when the cluster header is missing).
func (r *Route) Cluster(req *message.Request, rnd uint64) (c *cluster.Cluster, wc *WeightedCluster, name string) {
	switch r.clusterKind {
	case clusterStatic:
		return r.cluster.Load(), nil, r.clusterName
	case clusterHeader:
		v, ok := headerValue(req, r.clusterName)
		if !ok || v == "" {
			return nil, nil, ""
		}
		return r.clusters.Get(v), nil, v
	case clusterWeighted:
		if w := r.PickWeighted(rnd); w != nil {
			return w.cluster.Load(), w, w.Name
		}
	}
	return nil, nil, ""
}

// Weighted reports whether the route splits traffic by weighted_clusters.
func (r *Route) Weighted() bool { return r.clusterKind == clusterWeighted }

// PickWeighted chooses a weighted_clusters entry (rnd % total weight); nil
// when the route has no weighted clusters. The connection manager picks
// it when the route matches, so that filters before the router see the
// entry's typed_per_filter_config; the router then uses Cluster of it.
func (r *Route) PickWeighted(rnd uint64) *WeightedCluster {
	if r.clusterKind != clusterWeighted {
		return nil
	}
	x := rnd % r.totalWeight
	for _, w := range r.weighted {
		if x < uint64(w.Weight) {
			return w
		}
		x -= uint64(w.Weight)
	}
	return nil
}

// Cluster returns the entry's cluster, or nil when it does not exist now.
func (w *WeightedCluster) Cluster() *cluster.Cluster { return w.cluster.Load() }

// ApplyRequest prepares req for the upstream: header mutations of every
// level (weighted cluster, route, virtual host, route configuration — in
// that order unless most_specific_header_mutations_wins reverses it; later
// levels override earlier ones), then the host rewrite, then the path
// rewrite. Substitutions see the request as it arrived.
//
// hostHostname is the hostname of the host the load balancer picked, for
// auto_host_rewrite; pass "" if the host is not chosen yet and apply
// AutoHostRewrite yourself once it is (and again when a retry picks another
// host). vh and wc are what Match and Cluster returned (wc may be nil).
func (r *Route) ApplyRequest(req *message.Request, vh *VirtualHost, wc *WeightedCluster, info *streaminfo.StreamInfo, hostHostname string) {
	if r.hasRequestMutations {
		fctx := formatter.Context{Request: req, Info: info}
		for _, l := range r.levels(vh, wc) {
			if l != nil && l.req != nil {
				l.req.apply(&req.Header, &fctx, false)
			}
		}
	}
	switch {
	case r.hostRewrite != "":
		req.Authority = r.hostRewrite
	case r.autoHostRW && hostHostname != "":
		req.Authority = hostHostname
	}
	if r.hasPrefixRW || r.regexRewrite != nil {
		if np, ok := r.rewritePath(req.Path); ok {
			if r.insertOriginalPath {
				req.Header.Set("x-envoy-original-path", req.Path)
			}
			req.Path = np
		}
	}
}

// ApplyResponse applies the response header mutations of every level, in
// the same order as ApplyRequest. Substitutions see the response headers
// as they are when each level starts. As in Envoy, it applies to redirect
// and direct responses too (wc nil).
func (r *Route) ApplyResponse(h *message.Headers, req *message.Request, vh *VirtualHost, wc *WeightedCluster, info *streaminfo.StreamInfo) {
	if !r.hasResponseMutations {
		return
	}
	fctx := formatter.Context{Request: req, Info: info}
	for _, l := range r.levels(vh, wc) {
		if l != nil && l.resp != nil {
			l.resp.apply(h, &fctx, true)
		}
	}
}

// levels returns the mutation levels in application order.
func (r *Route) levels(vh *VirtualHost, wc *WeightedCluster) [4]*levelMutations {
	var wm *levelMutations
	if wc != nil {
		wm = wc.mut
	}
	vm := r.vhMut
	if vh != nil {
		vm = vh.mut
	}
	if r.mostSpecificWins {
		return [4]*levelMutations{r.global, vm, r.mut, wm}
	}
	return [4]*levelMutations{wm, r.mut, vm, r.global}
}

// rewritePath applies prefix_rewrite or regex_rewrite to the path part of
// p, keeping the query string.
func (r *Route) rewritePath(p string) (string, bool) {
	path, query := p, ""
	if i := strings.IndexByte(p, '?'); i >= 0 {
		path, query = p[:i], p[i:]
	}
	var np string
	switch {
	case r.regexRewrite != nil:
		np = r.regexRewrite.apply(path)
	case r.hasPrefixRW:
		switch r.match.kind {
		case pathRegex:
			np = r.prefixRewrite
		case pathExact:
			np = r.prefixRewrite + path[min(len(r.match.value), len(path)):]
		default:
			if len(path) < len(r.match.value) {
				// A prefix containing '?' matched into the query.
				return p, false
			}
			np = r.prefixRewrite + path[len(r.match.value):]
		}
	default:
		return p, false
	}
	return np + query, true
}

// DirectResponse returns a direct_response route's status and body.
func (r *Route) DirectResponse() (status int, body []byte) {
	return r.directStatus, r.directBody
}

// --- redirects ---

type redirect struct {
	status      int
	scheme      string // "" keeps the request's
	host        string
	port        string
	pathRedir   string
	hasPathRed  bool
	prefixRW    string
	hasPrefixRW bool
	regexRW     *regexRewrite
	stripQuery  bool
	match       *routeMatch
}

func compileRedirect(ra *routev3.RedirectAction, m *routeMatch, path string) (*redirect, error) {
	rd := &redirect{status: 301, match: m, host: ra.GetHostRedirect(), stripQuery: ra.GetStripQuery()}
	switch ra.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		rd.status = 301
	case routev3.RedirectAction_FOUND:
		rd.status = 302
	case routev3.RedirectAction_SEE_OTHER:
		rd.status = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		rd.status = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		rd.status = 308
	default:
		return nil, fmt.Errorf("%s.response_code: unknown value %d", path, ra.GetResponseCode())
	}
	switch s := ra.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			rd.scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		rd.scheme = strings.ToLower(s.SchemeRedirect)
	}
	if p := ra.GetPortRedirect(); p != 0 {
		if p > 65535 {
			return nil, fmt.Errorf("%s.port_redirect: %d is not a port", path, p)
		}
		rd.port = strconv.FormatUint(uint64(p), 10)
	}
	switch s := ra.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		rd.pathRedir, rd.hasPathRed = s.PathRedirect, true
	case *routev3.RedirectAction_PrefixRewrite:
		rd.prefixRW, rd.hasPrefixRW = s.PrefixRewrite, true
	case *routev3.RedirectAction_RegexRewrite:
		rr, err := compileRegexRewrite(s.RegexRewrite, path+".regex_rewrite")
		if err != nil {
			return nil, err
		}
		rd.regexRW = rr
	}
	return rd, nil
}

// Redirect returns a redirect route's status and Location. The scheme is
// the request's x-forwarded-proto (which the connection manager sets) or
// its scheme unless rewritten; when the scheme changes and no port_redirect
// or host_redirect is given, the original scheme's default port is dropped.
func (r *Route) Redirect(req *message.Request) (status int, location string) {
	rd := r.redirect
	if rd == nil {
		return 0, ""
	}
	origScheme := req.Header.Value("x-forwarded-proto")
	if origScheme == "" {
		origScheme = req.Scheme
	}
	if origScheme == "" {
		origScheme = "http"
	}
	scheme := origScheme
	if rd.scheme != "" {
		scheme = rd.scheme
	}
	host := req.Authority
	if rd.host != "" {
		host = rd.host
	}
	switch {
	case rd.port != "":
		if i := portStart(host); i >= 0 {
			host = host[:i]
		}
		host = host + ":" + rd.port
	case scheme != origScheme && rd.host == "":
		// Drop the original scheme's default port, so http://h:80 becomes
		// https://h, but https://h:443 → http keeps no stale :443 either.
		if i := portStart(host); i >= 0 {
			if p := host[i+1:]; origScheme == "http" && p == "80" || origScheme == "https" && p == "443" {
				host = host[:i]
			}
		}
	}
	path, query := req.Path, ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i:]
	}
	switch {
	case rd.hasPathRed:
		if i := strings.IndexByte(rd.pathRedir, '?'); i >= 0 {
			// A query in path_redirect replaces the request's and is kept
			// even with strip_query.
			path, query = rd.pathRedir, ""
		} else {
			path = rd.pathRedir
		}
	case rd.hasPrefixRW:
		switch rd.match.kind {
		case pathRegex:
			path = rd.prefixRW
		default:
			n := min(len(rd.match.value), len(path))
			path = rd.prefixRW + path[n:]
		}
	case rd.regexRW != nil:
		path = rd.regexRW.apply(path)
	}
	if rd.stripQuery {
		query = ""
	}
	return rd.status, scheme + "://" + host + path + query
}

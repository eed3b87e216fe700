// Package client is Legate's xDS client: it implements xds.Subscriber over
// the aggregated (ADS) stream, per-type gRPC streams and watched files, with
// Envoy's state-of-the-world and incremental (delta) protocol semantics.
//
// A "feed" is one place resources come from: the ADS stream, one
// (api_config_source, type) stream, or one (file, type). Each feed delivers
// on its own goroutine in arrival order, so the ADS ordering the management
// server chooses (CDS → EDS → LDS → RDS) is what consumers see.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/version"
	"github.com/legate-proxy/legate/internal/xds"
)

// Options configure a Client.
type Options struct {
	// Node identifies this proxy; id and cluster are resolved by the
	// caller. The client fills in the user agent and client features.
	Node *corev3.Node
	// ADS is the bootstrap's dynamic_resources.ads_config; nil means
	// there is no ADS stream and `ads: {}` sources are refused.
	ADS *corev3.ApiConfigSource
	// Clusters resolves envoy_grpc cluster names.
	Clusters *cluster.Manager
	Stats    *stats.Store
	Logger   *slog.Logger
}

// ClientFeatures are the xDS client features Legate honours, advertised in
// Node.client_features.
var ClientFeatures = []string{
	// SotW responses may wrap resources in envoy.service.discovery.v3.Resource.
	"xds.config.resource-in-sotw",
}

// Accepted is a resource as last accepted, for /config_dump.
type Accepted struct {
	Name        string
	Version     string
	LastUpdated time.Time
	Message     proto.Message
}

// Client is an xDS client. It is safe for concurrent use.
type Client struct {
	log     *slog.Logger
	node    *corev3.Node
	stats   *stats.Store
	ads     *grpcTarget // nil without ads_config
	cm      *cluster.Manager
	cpStats struct {
		connected, pending *stats.Gauge
		rateLimit          *stats.Counter
	}

	mu        sync.Mutex
	feeds     map[string]*feed
	scopes    map[stats.Scope]*scopeStats
	ctx       context.Context
	cancel    context.CancelFunc
	started   bool
	closed    bool
	streams   int // gRPC feeds running
	connected int // of which have a stream open
	wg        sync.WaitGroup
}

// New validates the options and returns a client that does nothing until
// Start.
func New(opts Options) (*Client, error) {
	c := &Client{
		log:    opts.Logger,
		stats:  opts.Stats,
		cm:     opts.Clusters,
		feeds:  make(map[string]*feed),
		scopes: make(map[stats.Scope]*scopeStats),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.stats == nil {
		c.stats = stats.NewStore()
	}
	c.node = buildNode(opts.Node)
	if opts.ADS != nil {
		t, err := c.parseAPIConfigSource(opts.ADS, "dynamic_resources.ads_config", true)
		if err != nil {
			return nil, err
		}
		c.ads = t
		c.controlPlaneLocked()
	}
	return c, nil
}

// controlPlaneLocked creates the control_plane stats; c.mu is held (or c
// is not shared yet). As in Envoy they exist only once there is a
// management server to talk to (ads_config, or a gRPC api_config_source in
// use), so a proxy fed by files alone does not report itself disconnected.
func (c *Client) controlPlaneLocked() {
	if c.cpStats.connected != nil {
		return
	}
	cp := c.stats.Scope("control_plane")
	c.cpStats.connected = cp.Gauge("connected_state", stats.NeverImport)
	// Legate never rate-limits its requests; these stay 0, as in an Envoy
	// without rate_limit_settings.
	c.cpStats.pending = cp.Gauge("pending_requests", stats.Accumulate)
	c.cpStats.rateLimit = cp.Counter("rate_limit_enforced")
}

func buildNode(n *corev3.Node) *corev3.Node {
	out := &corev3.Node{}
	if n != nil {
		out = proto.Clone(n).(*corev3.Node)
	}
	out.UserAgentName = "legate"
	out.UserAgentVersionType = &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: buildVersion()}
	for _, f := range ClientFeatures {
		if !slices.Contains(out.ClientFeatures, f) {
			out.ClientFeatures = append(out.ClientFeatures, f)
		}
	}
	return out
}

// buildVersion parses version.Version ("1.2.3-dev") into Envoy's
// BuildVersion; the full string goes into metadata.
func buildVersion() *corev3.BuildVersion {
	var sv typev3.SemanticVersion
	core, _, _ := strings.Cut(version.Version, "-")
	var parts [3]uint32
	for i, p := range strings.SplitN(core, ".", 3) {
		var v uint32
		if _, err := fmt.Sscanf(p, "%d", &v); err == nil {
			parts[i] = v
		}
	}
	sv.MajorNumber, sv.MinorNumber, sv.Patch = parts[0], parts[1], parts[2]
	return &corev3.BuildVersion{Version: &sv}
}

// CheckSource validates a ConfigSource as Subscribe would, without
// subscribing. Errors name the field below the ConfigSource.
func (c *Client) CheckSource(src *corev3.ConfigSource) error {
	_, _, err := c.resolve(src, "")
	return err
}

// resolve returns the feed key for (src, typeURL) and a constructor for
// the feed if it does not exist yet.
func (c *Client) resolve(src *corev3.ConfigSource, typeURL string) (string, func() *feed, error) {
	if src == nil {
		return "", nil, errors.New("config source is not set")
	}
	switch v := src.GetResourceApiVersion(); v {
	case corev3.ApiVersion_AUTO, corev3.ApiVersion_V3:
	default:
		return "", nil, fmt.Errorf("resource_api_version: %v is not supported, only V3", v)
	}
	if len(src.GetAuthorities()) > 0 {
		return "", nil, errors.New("authorities: xDS-TP authorities are not supported")
	}
	switch s := src.GetConfigSourceSpecifier().(type) {
	case *corev3.ConfigSource_Ads:
		if c.ads == nil {
			return "", nil, errors.New("ads: the bootstrap has no dynamic_resources.ads_config")
		}
		return "ads", func() *feed { return c.newGRPCFeed("ads", c.ads, "") }, nil
	case *corev3.ConfigSource_ApiConfigSource:
		t, err := c.parseAPIConfigSource(s.ApiConfigSource, "api_config_source", false)
		if err != nil {
			return "", nil, err
		}
		if typeURL != "" && typeOrder(typeURL) > 4 {
			return "", nil, fmt.Errorf("api_config_source: no discovery service for %s", typeURL)
		}
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(s.ApiConfigSource)
		key := "grpc:" + typeURL + ":" + string(b)
		return key, func() *feed { return c.newGRPCFeed(t.Name+" "+shortType(typeURL), t, typeURL) }, nil
	case *corev3.ConfigSource_Path:
		//lint:ignore SA1019 the legacy path is still in real configs (Envoy's dynamic-config-fs); accepted as Envoy does
		return c.resolveFile(s.Path, "", "path", typeURL)
	case *corev3.ConfigSource_PathConfigSource:
		pcs := s.PathConfigSource
		return c.resolveFile(pcs.GetPath(), pcs.GetWatchedDirectory().GetPath(), "path_config_source.path", typeURL)
	case *corev3.ConfigSource_Self:
		return "", nil, errors.New("self: is not supported")
	default:
		return "", nil, errors.New("config_source_specifier: one of ads, api_config_source, path_config_source or path must be set")
	}
}

func (c *Client) resolveFile(path, dir, field, typeURL string) (string, func() *feed, error) {
	if path == "" {
		return "", nil, fmt.Errorf("%s: must be set", field)
	}
	// As Envoy: the file must exist when the config is loaded.
	if _, err := os.Stat(path); err != nil {
		return "", nil, fmt.Errorf("%s: %q must refer to an existing path: %w", field, path, err)
	}
	return "file:" + typeURL + ":" + path, func() *feed { return c.newFileFeed(path, dir, typeURL) }, nil
}

func shortType(typeURL string) string {
	return typeURL[strings.LastIndexByte(typeURL, '.')+1:]
}

// Subscribe opens a watch. It may be called before or after Start, and
// from inside a Watcher's Update (so may cancel): neither waits for a
// delivery in progress.
func (c *Client) Subscribe(w xds.Watch) (cancel func(), err error) {
	if w.Watcher == nil {
		return nil, errors.New("xds watch: no watcher")
	}
	if w.TypeURL == "" {
		return nil, errors.New("xds watch: no type URL")
	}
	key, mk, err := c.resolve(w.Source, w.TypeURL)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("xds client is closed")
	}
	f := c.feeds[key]
	if f == nil {
		f = mk()
		c.feeds[key] = f
		if c.started {
			c.startFeed(f)
		}
	}
	wa := &watch{w: w, timeout: xds.InitialFetchTimeout(w.Source)}
	if w.Stats != nil {
		wa.stats = c.scopeStatsLocked(*w.Stats)
	}
	started := c.started
	c.mu.Unlock()

	f.add(wa)
	if started {
		f.armTimer(wa)
	}
	return func() { f.remove(wa) }, nil
}

// Start connects every feed; watches opened before Start are requested on
// connect. Feeds stop when ctx ends or Close is called.
func (c *Client) Start(ctx context.Context) {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return
	}
	c.started = true
	c.ctx, c.cancel = context.WithCancel(ctx)
	feeds := make([]*feed, 0, len(c.feeds))
	for _, f := range c.feeds {
		feeds = append(feeds, f)
		c.startFeed(f)
	}
	c.mu.Unlock()
	for _, f := range feeds {
		f.armTimers()
	}
}

// startFeed runs f; c.mu is held.
func (c *Client) startFeed(f *feed) {
	if f.grpc != nil {
		c.streams++
		c.updateConnectedLocked()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f.run(c.ctx)
	}()
}

// Close stops every feed and waits for every goroutine the client started,
// including initial_fetch_timeout callbacks and deliveries of cached
// resources to new watches; no watcher is called once it returns. It must
// not be called from inside a Watcher.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	cancel := c.cancel
	feeds := make([]*feed, 0, len(c.feeds))
	for _, f := range c.feeds {
		feeds = append(feeds, f)
	}
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	for _, f := range feeds {
		f.stopTimers()
	}
}

// Resources lists what was last accepted for typeURL, sorted by name.
func (c *Client) Resources(typeURL string) []Accepted {
	c.mu.Lock()
	feeds := make([]*feed, 0, len(c.feeds))
	for _, f := range c.feeds {
		feeds = append(feeds, f)
	}
	c.mu.Unlock()
	var out []Accepted
	for _, f := range feeds {
		out = append(out, f.accepted(typeURL)...)
	}
	slices.SortFunc(out, func(a, b Accepted) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// enter counts a goroutine the client starts outside its feeds' own (a
// timer callback, a catch-up delivery) in c.wg so Close waits for it; false
// means the client is closed and the goroutine must not run. Adding under
// c.mu, which Close takes to set closed before it waits, orders every Add
// before the Wait.
func (c *Client) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// setConnected records a gRPC feed's stream opening or closing.
func (c *Client) setConnected(delta int) {
	c.mu.Lock()
	c.connected += delta
	c.updateConnectedLocked()
	c.mu.Unlock()
}

// updateConnectedLocked: connected_state is 1 when every gRPC stream is up
// (Envoy has one gauge that each of its gRPC muxes overwrites; with
// several streams Legate reports 1 only when none is down).
func (c *Client) updateConnectedLocked() {
	v := int64(0)
	if c.streams > 0 && c.connected == c.streams {
		v = 1
	}
	c.cpStats.connected.Set(v)
}

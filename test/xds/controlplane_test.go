package xds_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/legate-proxy/legate/internal/tooling/controlplane"
)

// nodeID is the node id the test bootstraps use, and the key of the one
// snapshot the control plane serves.
const nodeID = "legate-test"

// request is one discovery request the management server received.
type request struct {
	Delta     bool
	TypeURL   string
	Version   string // SotW version_info
	Nonce     string
	Names     []string // SotW resource_names, delta subscribe
	Error     string   // error_detail.message: a NACK
	UserAgent string   // node.user_agent_name, when the node was sent
	ADS       bool     // whether it came on an aggregated stream
	At        time.Time
}

// ControlPlane is go-control-plane's real server and snapshot cache on a
// loopback port. It can be stopped and started again on the same port.
type ControlPlane struct {
	t     testing.TB
	Port  int
	cache cachev3.SnapshotCache

	mu       sync.Mutex
	grpc     *grpc.Server
	requests []request
	// streams is each open stream's type URL ("" for ADS), by delta and
	// stream id.
	streams map[streamKey]string
	version atomic.Int64
	last    map[resource.Type][]types.Resource
}

// startControlPlane serves on a fresh loopback port.
func startControlPlane(t testing.TB) *ControlPlane {
	t.Helper()
	cp := &ControlPlane{t: t, cache: cachev3.NewSnapshotCache(false, oneNode{}, nil)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp.Port = ln.Addr().(*net.TCPAddr).Port
	cp.serve(ln)
	t.Cleanup(cp.Stop)
	return cp
}

// Addr is the server's host:port.
func (cp *ControlPlane) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(cp.Port)) }

// streamKey names a stream: the SotW and delta servers number theirs
// separately.
type streamKey struct {
	delta bool
	id    int64
}

func (cp *ControlPlane) serve(ln net.Listener) {
	open := func(delta bool) func(context.Context, int64, string) error {
		return func(_ context.Context, id int64, typeURL string) error {
			cp.mu.Lock()
			if cp.streams == nil {
				cp.streams = map[streamKey]string{}
			}
			cp.streams[streamKey{delta, id}] = typeURL
			cp.mu.Unlock()
			return nil
		}
	}
	cbs := serverv3.CallbackFuncs{
		StreamOpenFunc:      open(false),
		DeltaStreamOpenFunc: open(true),
		StreamRequestFunc: func(id int64, r *discoverygrpc.DiscoveryRequest) error {
			cp.record(streamKey{false, id}, request{TypeURL: r.GetTypeUrl(), Version: r.GetVersionInfo(), Nonce: r.GetResponseNonce(),
				Names: r.GetResourceNames(), Error: r.GetErrorDetail().GetMessage(), UserAgent: r.GetNode().GetUserAgentName()})
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, r *discoverygrpc.DeltaDiscoveryRequest) error {
			cp.record(streamKey{true, id}, request{Delta: true, TypeURL: r.GetTypeUrl(), Nonce: r.GetResponseNonce(),
				Names: r.GetResourceNamesSubscribe(), Error: r.GetErrorDetail().GetMessage(), UserAgent: r.GetNode().GetUserAgentName()})
			return nil
		},
	}
	// A NACKed state-of-the-world version is not sent again until the
	// next snapshot, as a careful management server does (and legate-cp).
	srv := serverv3.NewServer(context.Background(), controlplane.HoldNACKs(cp.cache, oneNode{}), cbs)
	g := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(g, srv)
	secretservice.RegisterSecretDiscoveryServiceServer(g, srv)
	cp.mu.Lock()
	cp.grpc = g
	cp.mu.Unlock()
	go func() { _ = g.Serve(ln) }()
}

func (cp *ControlPlane) record(stream streamKey, r request) {
	r.At = time.Now()
	cp.mu.Lock()
	typeURL, ok := cp.streams[stream]
	r.ADS = ok && typeURL == ""
	cp.requests = append(cp.requests, r)
	cp.mu.Unlock()
}

// Stop closes the server and every stream, as a management server that
// goes away does.
func (cp *ControlPlane) Stop() {
	cp.mu.Lock()
	g := cp.grpc
	cp.grpc = nil
	cp.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// Restart starts a new server, with a new cache holding the last snapshot,
// on the same port.
func (cp *ControlPlane) Restart() {
	cp.t.Helper()
	var ln net.Listener
	var err error
	// The old socket is closed; binding again can only lose to another
	// process taking the port in between, so retry briefly.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", cp.Addr()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		cp.t.Fatalf("restarting the control plane on %s: %v", cp.Addr(), err)
	}
	cp.mu.Lock()
	last := cp.last
	cp.cache = cachev3.NewSnapshotCache(false, oneNode{}, nil)
	cp.mu.Unlock()
	if last != nil {
		cp.setVersion(strconv.FormatInt(cp.version.Load(), 10), last)
	}
	cp.serve(ln)
}

// Set publishes a new snapshot (a new version for every type) and returns
// its version.
func (cp *ControlPlane) Set(res map[resource.Type][]types.Resource) string {
	cp.t.Helper()
	v := strconv.FormatInt(cp.version.Add(1), 10)
	cp.setVersion(v, res)
	return v
}

func (cp *ControlPlane) setVersion(v string, res map[resource.Type][]types.Resource) {
	cp.t.Helper()
	snap, err := cachev3.NewSnapshot(v, res)
	if err != nil {
		cp.t.Fatalf("snapshot %s: %v", v, err)
	}
	cp.mu.Lock()
	cp.last = res
	c := cp.cache
	cp.mu.Unlock()
	if err := c.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		cp.t.Fatalf("snapshot %s: %v", v, err)
	}
}

// Requests is a copy of every request received so far.
func (cp *ControlPlane) Requests() []request {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]request(nil), cp.requests...)
}

// Mark is a position in the request log; requests after it are "new".
func (cp *ControlPlane) Mark() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return len(cp.requests)
}

// WaitNACK waits for a NACK of typeURL after mark and returns it.
func (cp *ControlPlane) WaitNACK(t testing.TB, mark int, typeURL string) request {
	t.Helper()
	var got request
	eventually(t, waitTimeout, func() bool {
		reqs := cp.Requests()
		for _, r := range reqs[min(mark, len(reqs)):] {
			if r.TypeURL == typeURL && r.Error != "" {
				got = r
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("no NACK of %s; requests since: %s", typeURL, cp.describe(mark)) })
	return got
}

// WaitACK waits for an ACK of typeURL after mark: in the state of the world
// a request accepting version (version_info = version, no error_detail), in
// delta a request answering a response (a nonce) without error_detail.
func (cp *ControlPlane) WaitACK(t testing.TB, mark int, typeURL string, m Mode, version string) {
	t.Helper()
	eventually(t, waitTimeout, func() bool {
		reqs := cp.Requests()
		for _, r := range reqs[min(mark, len(reqs)):] {
			if r.TypeURL != typeURL || r.Error != "" {
				continue
			}
			if m.Delta && r.Nonce != "" || !m.Delta && r.Version == version {
				return true
			}
		}
		return false
	}, func() string {
		return fmt.Sprintf("no ACK of %s version %s; requests since: %s", typeURL, version, cp.describe(mark))
	})
}

func (cp *ControlPlane) describe(mark int) string {
	reqs := cp.Requests()
	var b strings.Builder
	for _, r := range reqs[min(mark, len(reqs)):] {
		fmt.Fprintf(&b, "\n  ads=%v delta=%v %s version=%q nonce=%q names=%v error=%q", r.ADS, r.Delta, shortType(r.TypeURL), r.Version, r.Nonce, r.Names, r.Error)
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return b.String()
}

func shortType(url string) string { return url[strings.LastIndex(url, ".")+1:] }

// oneNode serves one snapshot to every node (the examples' bootstraps
// bring their own node ids).
type oneNode struct{}

func (oneNode) ID(*corev3.Node) string { return nodeID }

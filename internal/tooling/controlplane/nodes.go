package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// NodeStatus is what GET /v1/nodes shows for one node id.
type NodeStatus struct {
	ID        string                 `json:"id"`
	Cluster   string                 `json:"cluster,omitempty"`
	UserAgent string                 `json:"user_agent,omitempty"`
	Streams   []StreamStatus         `json:"streams"`
	Types     map[string]*TypeStatus `json:"types"`
}

// StreamStatus describes one open xDS stream of a node.
type StreamStatus struct {
	ID       int64     `json:"id"`
	Protocol string    `json:"protocol"` // "sotw" or "delta"
	Service  string    `json:"service"`  // "ads" or the type URL of a per-type stream
	Opened   time.Time `json:"opened"`
}

// TypeStatus is the state of one resource type on a node.
type TypeStatus struct {
	SentVersion  string    `json:"sent_version,omitempty"`
	AckedVersion string    `json:"acked_version,omitempty"`
	AckedAt      time.Time `json:"acked_at,omitzero"`
	LastNack     *Nack     `json:"last_nack,omitempty"`
}

// Nack is the last rejection of a type by a node.
type Nack struct {
	Version string    `json:"version,omitempty"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

type streamState struct {
	StreamStatus
	node  *core.Node
	types map[string]*TypeStatus
	// lastNonce maps the last response nonce per type to the version it
	// carried: delta ACKs carry only the nonce, SotW NACKs the old version.
	lastNonce map[string][2]string
}

// tracker follows the xDS streams through go-control-plane's callbacks:
// which nodes are connected, what each ACKed and NACKed.
type tracker struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	streams map[int64]*streamState
}

func newTracker(log *slog.Logger) *tracker {
	return &tracker{log: log, now: time.Now, streams: map[int64]*streamState{}}
}

func (t *tracker) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(_ context.Context, id int64, typeURL string) error {
			t.open(id, "sotw", typeURL)
			return nil
		},
		DeltaStreamOpenFunc: func(_ context.Context, id int64, typeURL string) error {
			t.open(id, "delta", typeURL)
			return nil
		},
		StreamClosedFunc:      func(id int64, _ *core.Node) { t.close(id) },
		DeltaStreamClosedFunc: func(id int64, _ *core.Node) { t.close(id) },
		StreamRequestFunc: func(id int64, req *discovery.DiscoveryRequest) error {
			t.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, req *discovery.DeltaDiscoveryRequest) error {
			t.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
			t.response(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
		},
		StreamDeltaResponseFunc: func(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
			t.response(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
		},
	}
}

func (t *tracker) open(id int64, protocol, typeURL string) {
	svc := typeURL
	if typeURL == resource.AnyType {
		svc = "ads"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams[id] = &streamState{
		StreamStatus: StreamStatus{ID: id, Protocol: protocol, Service: svc, Opened: t.now()},
		types:        map[string]*TypeStatus{},
		lastNonce:    map[string][2]string{},
	}
}

func (t *tracker) close(id int64) {
	t.mu.Lock()
	s := t.streams[id]
	delete(t.streams, id)
	t.mu.Unlock()
	if s != nil && s.node != nil {
		t.log.Info("xDS stream closed", "node", s.node.GetId(), "stream", id, "protocol", s.Protocol, "service", s.Service)
	}
}

func (t *tracker) request(id int64, node *core.Node, typeURL, nonce, version, errMsg string, nack bool) {
	t.mu.Lock()
	s := t.streams[id]
	if s == nil {
		t.mu.Unlock()
		return
	}
	first := false
	if node != nil && s.node == nil {
		s.node, first = node, true
	}
	nodeID := s.node.GetId()
	ts := s.types[typeURL]
	if ts == nil {
		ts = &TypeStatus{}
		s.types[typeURL] = ts
	}
	// The version a request answers is the one sent with its nonce: a
	// delta ACK carries no version, and a SotW NACK carries the last
	// accepted one rather than the rejected one.
	if last, ok := s.lastNonce[typeURL]; ok && nonce != "" && last[0] == nonce {
		if nack || version == "" {
			version = last[1]
		}
	} else if nack {
		version = ""
	}
	now := t.now()
	switch {
	case nack:
		ts.LastNack = &Nack{Version: version, Error: errMsg, At: now}
	case nonce != "":
		ts.AckedVersion, ts.AckedAt = version, now
	}
	t.mu.Unlock()

	if first {
		t.log.Info("xDS stream opened", "node", nodeID, "cluster", node.GetCluster(), "user_agent", userAgent(node), "stream", id, "protocol", s.Protocol, "service", s.Service)
	}
	if nack {
		t.log.Warn("NACK", "node", nodeID, "type", typeURL, "version", version, "error", errMsg)
	} else if nonce != "" {
		t.log.Debug("ACK", "node", nodeID, "type", typeURL, "version", version)
	}
}

func (t *tracker) response(id int64, typeURL, nonce, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.streams[id]
	if s == nil {
		return
	}
	ts := s.types[typeURL]
	if ts == nil {
		ts = &TypeStatus{}
		s.types[typeURL] = ts
	}
	ts.SentVersion = version
	s.lastNonce[typeURL] = [2]string{nonce, version}
}

// nodes returns the connected nodes, by id; streams that have not yet sent
// a node are left out.
func (t *tracker) nodes() []NodeStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	byID := map[string]*NodeStatus{}
	for _, id := range slices.Sorted(maps.Keys(t.streams)) {
		s := t.streams[id]
		if s.node == nil {
			continue
		}
		n := byID[s.node.GetId()]
		if n == nil {
			n = &NodeStatus{ID: s.node.GetId(), Cluster: s.node.GetCluster(), UserAgent: userAgent(s.node), Types: map[string]*TypeStatus{}}
			byID[n.ID] = n
		}
		n.Streams = append(n.Streams, s.StreamStatus)
		for typ, ts := range s.types {
			c := *ts
			if prev := n.Types[typ]; prev != nil && prev.LastNack != nil && (c.LastNack == nil || prev.LastNack.At.After(c.LastNack.At)) {
				c.LastNack = prev.LastNack
			}
			n.Types[typ] = &c
		}
	}
	out := make([]NodeStatus, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out = append(out, *byID[id])
	}
	return out
}

// connected is how many distinct nodes have a stream open.
func (t *tracker) connected() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := map[string]bool{}
	for _, s := range t.streams {
		if s.node != nil {
			ids[s.node.GetId()] = true
		}
	}
	return len(ids)
}

// userAgent renders user_agent_name and its version, e.g. "legate/1.4.0".
func userAgent(n *core.Node) string {
	ua := n.GetUserAgentName()
	v := n.GetUserAgentVersion()
	if v == "" {
		if bv := n.GetUserAgentBuildVersion().GetVersion(); bv != nil {
			v = formatSemver(bv.GetMajorNumber(), bv.GetMinorNumber(), bv.GetPatch())
		}
	}
	if ua != "" && v != "" {
		return ua + "/" + v
	}
	return ua
}

func formatSemver(major, minor, patch uint32) string {
	return fmt.Sprintf("%d.%d.%d", major, minor, patch)
}

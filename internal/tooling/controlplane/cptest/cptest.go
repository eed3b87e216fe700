// Package cptest is a raw xDS client for tests of legate-cp: it speaks ADS
// (state of the world and delta) and the per-type services directly, so
// tests see exactly what the server sends.
package cptest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// Timeout bounds every wait for a response.
const Timeout = 20 * time.Second

// Dial connects to an xDS server; the connection closes with the test.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Node is the node the tests identify as.
func Node(id string) *core.Node {
	return &core.Node{Id: id, Cluster: "test", UserAgentName: "cptest", UserAgentVersionType: &core.Node_UserAgentVersion{UserAgentVersion: "1"}}
}

// SotW is a state-of-the-world stream: ADS, or one per-type service.
type SotW struct {
	t      testing.TB
	stream interface {
		Send(*discovery.DiscoveryRequest) error
		Recv() (*discovery.DiscoveryResponse, error)
	}
	node   *core.Node
	sent   bool
	recv   chan recvd
	cancel context.CancelFunc
}

type recvd struct {
	resp *discovery.DiscoveryResponse
	err  error
}

// ADS opens a SotW ADS stream.
func ADS(t testing.TB, cc *grpc.ClientConn, node *core.Node) *SotW {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return newSotW(t, st, node, cancel)
}

// Stream wraps any SotW stream (e.g. EndpointDiscoveryService's).
func Stream(t testing.TB, st interface {
	Send(*discovery.DiscoveryRequest) error
	Recv() (*discovery.DiscoveryResponse, error)
}, node *core.Node, cancel context.CancelFunc) *SotW {
	return newSotW(t, st, node, cancel)
}

func newSotW(t testing.TB, st interface {
	Send(*discovery.DiscoveryRequest) error
	Recv() (*discovery.DiscoveryResponse, error)
}, node *core.Node, cancel context.CancelFunc) *SotW {
	s := &SotW{t: t, stream: st, node: node, recv: make(chan recvd, 64), cancel: cancel}
	go pump(st.Recv, s.recv, func(r *discovery.DiscoveryResponse, err error) recvd { return recvd{r, err} }, stopped(t, cancel))
	return s
}

// stopped cancels the stream with the test and returns a channel closed
// then, so that a receiving goroutine whose buffer is full does not outlive
// the test.
func stopped(t testing.TB, cancel context.CancelFunc) <-chan struct{} {
	done := make(chan struct{})
	t.Cleanup(func() { close(done); cancel() })
	return done
}

// pump forwards a stream's responses, and its final error, to ch.
func pump[R, V any](recv func() (R, error), ch chan<- V, wrap func(R, error) V, done <-chan struct{}) {
	for {
		r, err := recv()
		select {
		case ch <- wrap(r, err):
		case <-done:
			return
		}
		if err != nil {
			return
		}
	}
}

// Close ends the stream.
func (s *SotW) Close() { s.cancel() }

// Request sends a request; the node goes on the first one only, as Envoy's
// set_node_on_first_message_only does.
func (s *SotW) Request(typeURL string, names []string, version, nonce string, nack string) {
	s.t.Helper()
	req := &discovery.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce}
	if !s.sent {
		req.Node, s.sent = s.node, true
	}
	if nack != "" {
		req.ErrorDetail = &status.Status{Code: 3, Message: nack}
	}
	if err := s.stream.Send(req); err != nil {
		s.t.Fatalf("send %s: %v", typeURL, err)
	}
}

// Recv waits for the next response.
func (s *SotW) Recv() *discovery.DiscoveryResponse {
	s.t.Helper()
	select {
	case r := <-s.recv:
		if r.err != nil {
			s.t.Fatalf("recv: %v", r.err)
		}
		return r.resp
	case <-time.After(Timeout):
		s.t.Fatalf("no response within %v", Timeout)
	}
	return nil
}

// ACK acknowledges resp, keeping the subscription to names.
func (s *SotW) ACK(resp *discovery.DiscoveryResponse, names []string) {
	s.t.Helper()
	s.Request(resp.GetTypeUrl(), names, resp.GetVersionInfo(), resp.GetNonce(), "")
}

// Until ACKs responses of typeURL until ok accepts one, and returns it.
func (s *SotW) Until(typeURL string, names []string, ok func(*discovery.DiscoveryResponse) bool) *discovery.DiscoveryResponse {
	s.t.Helper()
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		r := s.Recv()
		if r.GetTypeUrl() != typeURL {
			continue
		}
		s.ACK(r, names)
		if ok(r) {
			return r
		}
	}
	s.t.Fatalf("no acceptable %s response within %v", typeURL, Timeout)
	return nil
}

// Delta is an incremental ADS stream.
type Delta struct {
	t      testing.TB
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *core.Node
	sent   bool
	recv   chan deltaRecvd
}

type deltaRecvd struct {
	resp *discovery.DeltaDiscoveryResponse
	err  error
}

// DeltaADS opens a delta ADS stream.
func DeltaADS(t testing.TB, cc *grpc.ClientConn, node *core.Node) *Delta {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	d := &Delta{t: t, stream: st, node: node, recv: make(chan deltaRecvd, 64)}
	go pump(st.Recv, d.recv, func(r *discovery.DeltaDiscoveryResponse, err error) deltaRecvd { return deltaRecvd{r, err} }, stopped(t, cancel))
	return d
}

// Subscribe sends a delta request; nonce non-empty makes it an ACK (or a
// NACK with nack set).
func (d *Delta) Subscribe(typeURL string, subscribe, unsubscribe []string, nonce, nack string) {
	d.t.Helper()
	req := &discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: subscribe, ResourceNamesUnsubscribe: unsubscribe, ResponseNonce: nonce}
	if !d.sent {
		req.Node, d.sent = d.node, true
	}
	if nack != "" {
		req.ErrorDetail = &status.Status{Code: 3, Message: nack}
	}
	if err := d.stream.Send(req); err != nil {
		d.t.Fatalf("send %s: %v", typeURL, err)
	}
}

// Recv waits for the next response and ACKs it.
func (d *Delta) Recv() *discovery.DeltaDiscoveryResponse {
	d.t.Helper()
	select {
	case r := <-d.recv:
		if r.err != nil {
			d.t.Fatalf("recv: %v", r.err)
		}
		d.Subscribe(r.resp.GetTypeUrl(), nil, nil, r.resp.GetNonce(), "")
		return r.resp
	case <-time.After(Timeout):
		d.t.Fatalf("no delta response within %v", Timeout)
	}
	return nil
}

// Names are the names of a SotW response's resources, sorted.
func Names(t testing.TB, r *discovery.DiscoveryResponse, m func() proto.Message) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		msg := m()
		if err := a.UnmarshalTo(msg); err != nil {
			t.Fatal(err)
		}
		out = append(out, nameOf(msg))
	}
	slices.Sort(out)
	return out
}

func nameOf(m proto.Message) string {
	type named interface{ GetName() string }
	type clusterNamed interface{ GetClusterName() string }
	if n, ok := m.(named); ok {
		return n.GetName()
	}
	if n, ok := m.(clusterNamed); ok {
		return n.GetClusterName()
	}
	return ""
}

// Endpoints renders a load assignment's endpoints as sorted "ip:port".
func Endpoints(cla *endpoint.ClusterLoadAssignment) []string {
	var out []string
	for _, lle := range cla.GetEndpoints() {
		for _, e := range lle.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
		}
	}
	slices.Sort(out)
	return out
}

// LoadAssignments decodes a SotW EDS response, by cluster name.
func LoadAssignments(t testing.TB, r *discovery.DiscoveryResponse) map[string]*endpoint.ClusterLoadAssignment {
	t.Helper()
	out := map[string]*endpoint.ClusterLoadAssignment{}
	for _, a := range r.GetResources() {
		cla := &endpoint.ClusterLoadAssignment{}
		if err := a.UnmarshalTo(cla); err != nil {
			t.Fatal(err)
		}
		out[cla.GetClusterName()] = cla
	}
	return out
}

// httpClient bounds every API call: a hung server fails the test rather
// than the whole run's timeout.
var httpClient = &http.Client{Timeout: Timeout}

// Do sends an HTTP request with an optional JSON body and returns the
// status and body.
func Do(t testing.TB, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

package listener

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tiv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	_ "github.com/legate-proxy/legate/internal/filter/listener/tls_inspector"
)

// A listener on a unix domain socket serves HTTP.
func TestPipeListener(t *testing.T) {
	h := newHarness(t, 0)
	path := filepath.Join(t.TempDir(), "l.sock")
	l := httpListener(t, "pipe", "127.0.0.1", 0, "over a pipe")
	l.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path, Mode: 0o600}}}
	if err := h.lds(t, "1", l); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := c.Get("http://pipe/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "over a pipe" {
		t.Fatalf("got %q", b)
	}
}

// socket_options and enable_reuse_port reach the listening socket.
func TestSocketOptions(t *testing.T) {
	h := newHarness(t, 0)
	l := httpListener(t, "opts", "127.0.0.1", 0, "x")
	l.EnableReusePort = wrapperspb.Bool(true)
	l.SocketOptions = []*corev3.SocketOption{{
		Level: syscall.SOL_SOCKET, Name: syscall.SO_RCVBUF,
		Value: &corev3.SocketOption_IntValue{IntValue: 65536}, State: corev3.SocketOption_STATE_PREBIND,
	}}
	if err := h.lds(t, "1", l); err != nil {
		t.Fatal(err)
	}
	h.m.mu.Lock()
	s := h.m.dyn["opts"].active.sock
	h.m.mu.Unlock()
	rc, err := s.ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var rcvbuf, reuse int
	rc.Control(func(fd uintptr) {
		rcvbuf, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		reuse, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort)
	})
	// Linux doubles SO_RCVBUF for its bookkeeping.
	if rcvbuf < 65536 || reuse != 1 {
		t.Fatalf("SO_RCVBUF %d, SO_REUSEPORT %d", rcvbuf, reuse)
	}
}

// A change outside the filter chains is a full update: not in place.
func TestListenerFilterChangeIsFullUpdate(t *testing.T) {
	h := newHarness(t, 0)
	l := httpListener(t, "l", "127.0.0.1", 0, "x")
	if err := h.lds(t, "1", l); err != nil {
		t.Fatal(err)
	}
	l2 := proto.CloneOf(l)
	l2.ListenerFiltersTimeout = durationpb.New(0)
	if err := h.lds(t, "2", l2); err != nil {
		t.Fatal(err)
	}
	l3 := proto.CloneOf(l2)
	l3.FilterChains[0].Name = "renamed"
	if err := h.lds(t, "3", l3); err != nil {
		t.Fatal(err)
	}
	if got := h.counter("listener_in_place_updated"); got != 1 {
		t.Errorf("listener_in_place_updated = %d, want 1 (only the chain-only change)", got)
	}
	if got := h.counter("listener_modified"); got != 2 {
		t.Errorf("listener_modified = %d, want 2", got)
	}
}

// Build errors name the path.
func TestBuildChainErrors(t *testing.T) {
	h := newHarness(t, 0)
	base := httpListener(t, "l", "127.0.0.1", 0, "x")
	dup := proto.CloneOf(base)
	dup.FilterChains = append(dup.FilterChains, proto.CloneOf(dup.FilterChains[0]))
	names := proto.CloneOf(dup)
	names.FilterChains[0].Name, names.FilterChains[1].Name = "a", "a"
	names.FilterChains[1].FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: []string{"x.test"}}
	lf := proto.CloneOf(base)
	lf.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "t", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tiv3.TlsInspector{MaxClientHelloSize: wrapperspb.UInt32(10)})}}}
	for _, c := range []struct {
		pb   *listenerv3.Listener
		want string
	}{
		{dup, "filter_chains[1].filter_chain_match: multiple filter chains with the same matching rules are defined (also filter_chains[0])"},
		{names, `filter_chains[1].name: "a" is also the name of filter_chains[0]`},
		{lf, "listener_filters[0]: max_client_hello_size: 10 is outside"},
	} {
		err := h.lds(t, "1", c.pb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

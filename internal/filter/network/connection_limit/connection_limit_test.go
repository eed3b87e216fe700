package connection_limit

import (
	"net"
	"strings"
	"sync"
	"testing"

	clv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/connection_limit/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

func TestLimitHoldsUnderConcurrency(t *testing.T) {
	st := stats.NewStore()
	f, err := Build(&clv3.ConnectionLimit{StatPrefix: "db", MaxConnections: wrapperspb.UInt64(3)}, &networkfilter.FactoryContext{Stats: st})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var admitted []*networkfilter.Conn
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			a, b := net.Pipe()
			defer b.Close()
			c := &networkfilter.Conn{Conn: a}
			if f.OnNewConnection(c) == networkfilter.Continue {
				mu.Lock()
				admitted = append(admitted, c)
				mu.Unlock()
				return
			}
			f.OnClose(c) // the chain closes a refused connection, then OnClose runs
		})
	}
	wg.Wait()
	if len(admitted) != 3 {
		t.Fatalf("%d connections admitted, want max_connections 3", len(admitted))
	}
	if got := st.Counter("connection_limit.db.limited_connections").Value(); got != 17 {
		t.Errorf("limited_connections = %d, want 17", got)
	}
	if got := st.Gauge("connection_limit.db.active_connections", stats.Accumulate).Value(); got != 3 {
		t.Errorf("active_connections = %d, want 3", got)
	}
	f.OnClose(admitted[0])
	if f.OnNewConnection(&networkfilter.Conn{}) != networkfilter.Continue {
		t.Error("a closed connection's place was not given back")
	}
}

func TestConfig(t *testing.T) {
	f, err := Build(&clv3.ConnectionLimit{StatPrefix: "p", MaxConnections: wrapperspb.UInt64(1), Delay: durationpb.New(1e9)}, &networkfilter.FactoryContext{})
	if err != nil || f.delay != 1e9 {
		t.Fatalf("%v %v", f, err)
	}
	for _, tt := range []struct {
		pb   *clv3.ConnectionLimit
		want string
	}{
		{&clv3.ConnectionLimit{MaxConnections: wrapperspb.UInt64(1)}, "stat_prefix"},
		{&clv3.ConnectionLimit{StatPrefix: "p"}, "max_connections: is required"},
		{&clv3.ConnectionLimit{StatPrefix: "p", MaxConnections: wrapperspb.UInt64(0)}, "max_connections: must be at least 1"},
		{&clv3.ConnectionLimit{StatPrefix: "p", MaxConnections: wrapperspb.UInt64(1), Delay: durationpb.New(-1)}, "delay"},
	} {
		if _, err := Build(tt.pb, &networkfilter.FactoryContext{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.pb, err, tt.want)
		}
	}
}

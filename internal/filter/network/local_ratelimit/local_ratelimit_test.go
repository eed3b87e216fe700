package local_ratelimit

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

func config(maxTokens uint32) *lrlv3.LocalRateLimit {
	return &lrlv3.LocalRateLimit{StatPrefix: "edge", TokenBucket: &typev3.TokenBucket{MaxTokens: maxTokens, FillInterval: durationpb.New(time.Hour)}}
}

func TestLimitHoldsWithinOneFill(t *testing.T) {
	st := stats.NewStore()
	f, err := Build(config(5), &networkfilter.FactoryContext{Stats: st})
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			c := &networkfilter.Conn{Info: &streaminfo.StreamInfo{}}
			if f.NewConn(c).OnNewConnection(c) == networkfilter.Continue {
				allowed.Add(1)
			} else if c.Flags() != streaminfo.UpstreamRetryLimitExceeded || c.Info.Flags != c.Flags() {
				t.Errorf("refused connection flags %v", c.Flags())
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 5 {
		t.Errorf("%d connections allowed, want 5", allowed.Load())
	}
	if got := st.Counter("local_rate_limit.edge.rate_limited").Value(); got != 35 {
		t.Errorf("rate_limited = %d, want 35", got)
	}
}

func TestRuntimeDisabled(t *testing.T) {
	rt, err := runtime.New([]*bootstrapv3.RuntimeLayer{{Name: "l", LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{
		StaticLayer: &structpb.Struct{Fields: map[string]*structpb.Value{"edge_rl": structpb.NewBoolValue(false)}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pb := config(1)
	pb.RuntimeEnabled = &corev3.RuntimeFeatureFlag{RuntimeKey: "edge_rl", DefaultValue: wrapperspb.Bool(true)}
	f, err := Build(pb, &networkfilter.FactoryContext{Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if f.OnNewConnection(&networkfilter.Conn{}) != networkfilter.Continue {
			t.Fatal("a runtime-disabled filter limited a connection")
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		pb   *lrlv3.LocalRateLimit
		want string
	}{
		{&lrlv3.LocalRateLimit{TokenBucket: config(1).TokenBucket}, "stat_prefix"},
		{&lrlv3.LocalRateLimit{StatPrefix: "p"}, "token_bucket: is required"},
		{&lrlv3.LocalRateLimit{StatPrefix: "p", TokenBucket: &typev3.TokenBucket{MaxTokens: 1, FillInterval: durationpb.New(time.Millisecond)}}, "token_bucket.fill_interval"},
		{&lrlv3.LocalRateLimit{StatPrefix: "p", TokenBucket: config(1).TokenBucket, ShareKey: "k"}, "share_key"},
	} {
		if _, err := Build(tt.pb, &networkfilter.FactoryContext{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.pb, err, tt.want)
		}
	}
}

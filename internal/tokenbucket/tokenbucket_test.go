package tokenbucket

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// manual gives b a clock the test moves.
func manual(b *Bucket) *atomic.Int64 {
	var clock atomic.Int64
	b.now = clock.Load
	b.empty.Store(-b.span)
	return &clock
}

func TestStartsFullAndRefills(t *testing.T) {
	b := New(3, 2, time.Second) // 2 tokens a second, at most 3
	clock := manual(b)
	for i := range 3 {
		if !b.Take() {
			t.Fatalf("take %d of a full bucket of 3 refused", i+1)
		}
	}
	if b.Take() {
		t.Fatal("a fourth token was given")
	}
	clock.Store(int64(500 * time.Millisecond)) // one token back
	if !b.Take() || b.Take() {
		t.Fatal("half a second at 2/s must give back exactly one token")
	}
	clock.Store(int64(time.Hour)) // long idle: full, not fuller
	n := 0
	for b.Take() {
		n++
	}
	if n != 3 {
		t.Fatalf("after a long idle %d tokens, want max_tokens 3", n)
	}
}

// The limit holds exactly under concurrency within one fill.
func TestConcurrentTakesHoldTheLimit(t *testing.T) {
	b := New(100, 1, time.Hour)
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 50 {
				if b.Take() {
					got.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got.Load() != 100 {
		t.Fatalf("%d tokens taken from a bucket of 100", got.Load())
	}
}

func TestFromProto(t *testing.T) {
	ok := &typev3.TokenBucket{MaxTokens: 5, FillInterval: durationpb.New(time.Second)}
	if _, err := FromProto(ok, "token_bucket"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		pb   *typev3.TokenBucket
		want string
	}{
		{nil, "token_bucket: is required"},
		{&typev3.TokenBucket{FillInterval: durationpb.New(time.Second)}, "token_bucket.max_tokens"},
		{&typev3.TokenBucket{MaxTokens: 1}, "token_bucket.fill_interval: is required"},
		{&typev3.TokenBucket{MaxTokens: 1, FillInterval: durationpb.New(10 * time.Millisecond)}, "shorter than the minimum of 50ms"},
		{&typev3.TokenBucket{MaxTokens: 1, FillInterval: durationpb.New(time.Second), TokensPerFill: wrapperspb.UInt32(0)}, "tokens_per_fill"},
	} {
		if _, err := FromProto(tt.pb, "token_bucket"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.pb, err, tt.want)
		}
	}
}

func BenchmarkTake(b *testing.B) {
	bk := New(1<<31, 1<<31, time.Second)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Take()
		}
	})
}

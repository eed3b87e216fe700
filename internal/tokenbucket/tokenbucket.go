// Package tokenbucket is Envoy's token bucket (envoy.type.v3.TokenBucket)
// as its local rate limits use it: it starts full with max_tokens and
// refills continuously at tokens_per_fill per fill_interval, never above
// max_tokens (Envoy's atomic token bucket, the default since 1.31; tokens
// are computed when taken, there is no refill timer).
//
// A Bucket is one atomic word: taking a token is a load and a
// compare-and-swap, so any number of goroutines share one bucket without a
// lock and the limit holds exactly.
package tokenbucket

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// MinFillInterval is the shortest fill_interval Envoy accepts for local
// rate limits.
const MinFillInterval = 50 * time.Millisecond

// Bucket is a token bucket shared by every user of one config.
type Bucket struct {
	base time.Time // monotonic origin of the clock below
	// cost is the refill time of one token, span that of a full bucket.
	cost, span int64
	// empty is the instant (ns since base) at which the bucket was or
	// will be empty, given the tokens taken: the tokens available at now
	// are (now - empty) / cost, at most max.
	empty atomic.Int64
	// now is the clock, ns since base; replaced in tests.
	now func() int64
}

// New returns a full bucket.
func New(maxTokens, tokensPerFill uint32, fillInterval time.Duration) *Bucket {
	cost := int64(max(1, math.Round(float64(fillInterval)/float64(tokensPerFill))))
	// Capped so that clock arithmetic cannot overflow: a bucket that
	// takes centuries to fill is as good as one that never refills.
	span := int64(min(float64(cost)*float64(maxTokens), math.MaxInt64/4))
	b := &Bucket{base: time.Now(), cost: cost, span: span}
	b.now = func() int64 { return int64(time.Since(b.base)) }
	b.empty.Store(b.now() - b.span)
	return b
}

// FromProto validates a TokenBucket as Envoy's local rate limits do
// (max_tokens at least 1, tokens_per_fill default 1, fill_interval at
// least 50 ms) and returns a full bucket. path names the field in errors.
func FromProto(pb *typev3.TokenBucket, path string) (*Bucket, error) {
	if pb == nil {
		return nil, fmt.Errorf("%s: is required", path)
	}
	if pb.GetMaxTokens() == 0 {
		return nil, fmt.Errorf("%s.max_tokens: must be at least 1", path)
	}
	perFill := uint32(1)
	if pb.TokensPerFill != nil {
		if perFill = pb.GetTokensPerFill().GetValue(); perFill == 0 {
			return nil, fmt.Errorf("%s.tokens_per_fill: must be at least 1", path)
		}
	}
	fi := pb.GetFillInterval()
	if fi == nil {
		return nil, fmt.Errorf("%s.fill_interval: is required", path)
	}
	if err := fi.CheckValid(); err != nil {
		return nil, fmt.Errorf("%s.fill_interval: %w", path, err)
	}
	if d := fi.AsDuration(); d < MinFillInterval {
		return nil, fmt.Errorf("%s.fill_interval: %v is shorter than the minimum of %v", path, d, MinFillInterval)
	}
	return New(pb.GetMaxTokens(), perFill, fi.AsDuration()), nil
}

// Take takes one token and reports whether there was one.
func (b *Bucket) Take() bool {
	now := b.now()
	for {
		old := b.empty.Load()
		// A bucket idle long enough is full, not fuller.
		e := max(old, now-b.span)
		next := e + b.cost
		if next > now {
			return false
		}
		if b.empty.CompareAndSwap(old, next) {
			return true
		}
	}
}

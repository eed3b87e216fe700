package rbac

import (
	"sync"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/rbac"
)

// Hooks: a filter deciding at connection start needs no data callback.
func (f *Config) Hooks() networkfilter.Hooks {
	if f.atStart {
		return 0
	}
	return networkfilter.HookData
}

// NewConn returns the shared filter, except for a one-time decision on the
// first byte, which remembers per connection that it was made.
func (f *Config) NewConn(*networkfilter.Conn) networkfilter.Instance {
	if f.atStart || f.continuous {
		return f
	}
	return &firstByte{f: f}
}

// Stats returns the filter's stats.
func (f *Config) Stats() *Stats { return f.stats }

// Config is the instance of filters without per-connection state.
var _ networkfilter.Instance = (*Config)(nil)

// OnNewConnection decides now when the filter decides at start.
func (f *Config) OnNewConnection(c *networkfilter.Conn) networkfilter.Status {
	if f.atStart {
		return f.enforce(c)
	}
	return networkfilter.Continue
}

// OnData re-decides on every read (CONTINUOUS).
func (f *Config) OnData(c *networkfilter.Conn, _ *networkfilter.Buffer, _ bool) networkfilter.Status {
	return f.enforce(c)
}

// firstByte decides once, on the first bytes from the downstream.
type firstByte struct {
	networkfilter.PassThrough
	f       *Config
	decided bool
}

func (fb *firstByte) OnData(c *networkfilter.Conn, _ *networkfilter.Buffer, _ bool) networkfilter.Status {
	if fb.decided {
		return networkfilter.Continue
	}
	fb.decided = true
	return fb.f.enforce(c)
}

// inputs recycles the engine's input: evaluation then allocates nothing.
var inputs = sync.Pool{New: func() any { return new(rbac.Input) }}

// enforce evaluates the shadow rules (counted and recorded only), then the
// rules; a denied connection is closed.
func (f *Config) enforce(c *networkfilter.Conn) networkfilter.Status {
	in := inputs.Get().(*rbac.Input)
	*in = rbac.Input{
		Source: c.RemoteAddr, Remote: c.RemoteAddr, DirectRemote: c.DirectRemote(), Local: c.LocalAddr,
		RequestedServerName: c.RequestedServerName, TLS: c.TLS, Dynamic: &c.Dynamic,
	}
	allowed := true
	if f.shadow != nil {
		d := f.shadow.Evaluate(in)
		result := resultAllowed
		if d.Allowed {
			f.stats.ShadowAllowed.Inc()
		} else {
			f.stats.ShadowDenied.Inc()
			result = resultDenied
		}
		fields := map[string]*structpb.Value{f.shadowResultKey: structpb.NewStringValue(result)}
		if d.Policy != "" {
			fields[f.shadowPolicyKey] = structpb.NewStringValue(d.Policy)
		}
		c.Dynamic.SetMetadata(metadataNamespace, &structpb.Struct{Fields: fields})
		logHint(c, f.shadow, d)
	}
	if f.engine != nil {
		d := f.engine.Evaluate(in)
		allowed = d.Allowed
		if allowed {
			f.stats.Allowed.Inc()
		} else {
			f.stats.Denied.Inc()
		}
		logHint(c, f.engine, d)
	}
	*in = rbac.Input{}
	inputs.Put(in)
	if !allowed {
		c.Close()
		return networkfilter.StopIteration
	}
	return networkfilter.Continue
}

// logHint records a LOG action's result as envoy.common.access_log_hint;
// a true already there is not turned false, as Envoy's shared metadata
// rule says.
func logHint(c *networkfilter.Conn, e *rbac.Engine, d rbac.Decision) {
	if e.Action() != rbacv3.RBAC_LOG {
		return
	}
	if !d.Matched {
		if v, ok := c.Dynamic.MetadataValue(commonNamespace, []string{accessLogHintField}); ok && v.GetBoolValue() {
			return
		}
	}
	c.Dynamic.SetMetadata(commonNamespace, &structpb.Struct{Fields: map[string]*structpb.Value{
		accessLogHintField: structpb.NewBoolValue(d.Matched),
	}})
}

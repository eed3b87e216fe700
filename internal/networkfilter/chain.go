package networkfilter

import (
	"context"
	"fmt"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Chain is a compiled filter chain: non-terminal filters, then the
// terminal one. It is immutable and serves any number of connections.
type Chain struct {
	filters  []NonTerminal
	terminal Terminal // nil: an empty filter list closes its connections
	// readers and writers are the indexes of the filters with data
	// callbacks, in the order the chain calls them (writers reversed).
	readers, writers []int
	closers          bool // some filter has HookClose
}

// BuildChain compiles a filter chain's filters: each typed_config is
// decoded by the factory registered for its type, every filter but the
// last must be non-terminal and the last terminal. An empty list is a
// chain that closes its connections at once, as in Envoy. path names the
// list in errors ("filter_chains[0].filters").
func BuildChain(filters []*listenerv3.Filter, fc *FactoryContext, path string) (*Chain, error) {
	var (
		nonTerminal []NonTerminal
		terminal    Terminal
	)
	for i, pb := range filters {
		at := fmt.Sprintf("%s[%d]", path, i)
		factory, msg, err := Registry.Lookup(pb.GetTypedConfig())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		f, err := factory(msg, fc)
		if err != nil {
			return nil, fmt.Errorf("%s.typed_config: %w", at, err)
		}
		last := i == len(filters)-1
		switch f := f.(type) {
		case Terminal:
			if !last {
				return nil, fmt.Errorf("%s: %s is a terminal filter and must be the last of the chain", at, msg.ProtoReflect().Descriptor().FullName())
			}
			terminal = f
		case NonTerminal:
			if last {
				return nil, fmt.Errorf("%s: %s is not a terminal filter; the last filter of a chain must be one (http_connection_manager, tcp_proxy)", at, msg.ProtoReflect().Descriptor().FullName())
			}
			nonTerminal = append(nonTerminal, f)
		default:
			return nil, fmt.Errorf("%s: the factory for %s built %T, neither a terminal nor a non-terminal filter", at, msg.ProtoReflect().Descriptor().FullName(), f)
		}
	}
	return NewChain(terminal, nonTerminal...), nil
}

// NewChain is a chain of already built filters: BuildChain's result, and
// tests'. A nil terminal closes every connection.
func NewChain(terminal Terminal, filters ...NonTerminal) *Chain {
	ch := &Chain{terminal: terminal, filters: filters}
	for i, f := range filters {
		h := f.Hooks()
		if h&HookData != 0 {
			ch.readers = append(ch.readers, i)
		}
		if h&HookWrite != 0 {
			ch.writers = append([]int{i}, ch.writers...)
		}
		ch.closers = ch.closers || h&HookClose != 0
	}
	return ch
}

// Terminal returns the chain's terminal filter, nil for an empty chain.
func (ch *Chain) Terminal() Terminal { return ch.terminal }

// ServeConn runs the connection through the chain: each non-terminal
// filter's OnNewConnection, then the terminal filter, with the filters'
// data callbacks inside its reads and writes.
func (ch *Chain) ServeConn(ctx context.Context, c *Conn) {
	if c.RequestedServerName == "" && c.TLS != nil {
		c.RequestedServerName = c.TLS.ServerName
	}
	if c.Info != nil && c.Info.Dynamic == nil {
		c.Info.Dynamic = &c.Dynamic
	}
	if ch.closers {
		// OnClose runs after the terminal filter returns.
		c.forbidDetach()
	}
	switch {
	case ch.terminal == nil:
		c.Close()
	case len(ch.filters) == 0:
		ch.terminal.ServeConn(ctx, c)
	case len(ch.readers) == 0 && len(ch.writers) == 0:
		ch.serveGated(ctx, c)
	default:
		ch.serveWrapped(ctx, c)
	}
}

// serveGated runs a chain whose filters only act at connection start and
// end: the connection is not wrapped, and the instances live on the stack.
func (ch *Chain) serveGated(ctx context.Context, c *Conn) {
	var arr [8]Instance
	insts := arr[:0]
	defer ch.closeInstances(c, &insts)
	for _, f := range ch.filters {
		in := f.NewConn(c)
		insts = append(insts, in)
		if in.OnNewConnection(c) == StopIteration {
			ch.reject(ctx, c)
			return
		}
	}
	ch.terminal.ServeConn(ctx, c)
}

func (ch *Chain) serveWrapped(ctx context.Context, c *Conn) {
	s := &session{Conn: c.Conn, ch: ch, c: c}
	s.insts = s.arr[:0]
	c.Conn = s
	defer ch.closeInstances(c, &s.insts)
	for _, f := range ch.filters {
		in := f.NewConn(c)
		s.insts = append(s.insts, in)
		if in.OnNewConnection(c) == StopIteration {
			ch.reject(ctx, c)
			return
		}
	}
	ch.terminal.ServeConn(ctx, c)
}

// closeInstances runs OnClose for the instances that started.
func (ch *Chain) closeInstances(c *Conn, insts *[]Instance) {
	if !ch.closers {
		return
	}
	for i, in := range *insts {
		if ch.filters[i].Hooks()&HookClose != 0 {
			in.OnClose(c)
		}
	}
}

// RejectionLogger is implemented by a terminal filter that logs the
// connections an earlier filter refused: Envoy's TCP proxy writes an access
// log entry for every connection of its chain.
type RejectionLogger interface {
	LogRejected(c *Conn)
}

// reject closes a connection a filter stopped at its start: after the
// delay it asked for (Conn.CloseAfter), cut short if the listener drains.
func (ch *Chain) reject(ctx context.Context, c *Conn) {
	if rl, ok := ch.terminal.(RejectionLogger); ok {
		defer rl.LogRejected(c)
	}
	if d := c.closeDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	c.Close()
}

package networkfilter

// Status is a non-terminal filter's answer to a callback.
type Status uint8

const (
	// Continue passes the connection, or the bytes, on to the next filter.
	Continue Status = iota
	// StopIteration stops here. From OnNewConnection: the connection goes
	// no further, the terminal filter never sees it, and the chain closes
	// it (at once, or after Conn.CloseAfter). From OnData or OnWrite: the
	// buffer's bytes are held back at this filter, and its next call gets
	// them again followed by the new ones; later filters see nothing yet.
	StopIteration
)

// Hooks says which data callbacks of a filter's instances do something,
// so that the chain calls only those; a chain none of whose filters has
// HookData or HookWrite leaves the connection unwrapped. OnNewConnection is
// always called.
type Hooks uint8

const (
	HookData  Hooks = 1 << iota // OnData: bytes from the downstream
	HookWrite                   // OnWrite: bytes to the downstream
	HookClose                   // OnClose
)

// NonTerminal is a compiled filter that is not the last of its chain. It
// is immutable and shared by every connection of the chain.
type NonTerminal interface {
	// Hooks says which of Instance's data and close callbacks this
	// filter's instances use.
	Hooks() Hooks
	// NewConn returns the filter's instance for a new connection: one
	// shared value for a filter without per-connection state (a
	// connection then costs it nothing), or a fresh value.
	NewConn(c *Conn) Instance
}

// Instance is a non-terminal filter's part in one connection. Embed
// PassThrough for the callbacks a filter does not need.
//
// Callbacks of one direction are never concurrent: OnNewConnection, then
// OnData from the goroutine reading the connection; OnWrite from the one
// writing it (which may be another: the TCP proxy copies each direction on
// its own goroutine), so state shared by OnData and OnWrite needs atomics.
// To end the connection, a callback closes it (c.Close) and returns
// StopIteration; the terminal filter's read or write then fails with
// ErrClosed.
type Instance interface {
	// OnNewConnection runs when the connection starts, in chain order,
	// before the terminal filter sees it.
	OnNewConnection(c *Conn) Status
	// OnData sees bytes from the downstream, in chain order; endStream
	// is set once, when the downstream has half-closed. The filter may
	// read data, change its bytes in place, replace or drain them.
	OnData(c *Conn, data *Buffer, endStream bool) Status
	// OnWrite sees bytes going to the downstream, in reverse chain order
	// as in Envoy; endStream is set when the terminal filter half-closes.
	// The bytes are the writer's and must not be changed in place: Set
	// replaces them.
	OnWrite(c *Conn, data *Buffer, endStream bool) Status
	// OnClose runs once the connection has ended, for instances whose
	// OnNewConnection ran.
	OnClose(c *Conn)
	// Buffered reports whether the instance keeps bytes of its own,
	// beyond what the chain holds for it after StopIteration.
	Buffered() bool
}

// PassThrough is an Instance that does nothing: it continues, and holds
// nothing. Filters embed it and override what they use.
type PassThrough struct{}

func (PassThrough) OnNewConnection(*Conn) Status        { return Continue }
func (PassThrough) OnData(*Conn, *Buffer, bool) Status  { return Continue }
func (PassThrough) OnWrite(*Conn, *Buffer, bool) Status { return Continue }
func (PassThrough) OnClose(*Conn)                       {}
func (PassThrough) Buffered() bool                      { return false }

// Buffer is the bytes a data callback sees. It is only valid during the
// callback.
type Buffer struct {
	b []byte
}

// Bytes returns the bytes. OnData may change them in place.
func (b *Buffer) Bytes() []byte { return b.b }

// Len is the number of bytes.
func (b *Buffer) Len() int { return len(b.b) }

// Drain drops the first n bytes: they go no further.
func (b *Buffer) Drain(n int) { b.b = b.b[min(n, len(b.b)):] }

// Set replaces the bytes with p. The chain copies what it keeps, so the
// filter may reuse p from its next callback on.
func (b *Buffer) Set(p []byte) { b.b = p }

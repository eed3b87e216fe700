package networkfilter

import (
	"errors"
	"net"
)

// replayConn is a transport whose first bytes were already read from the
// socket by listener filters (tls_inspector peeks at the ClientHello,
// http_inspector at the request line): reads return them first, so the
// chain sees the stream as the peer sent it.
type replayConn struct {
	net.Conn
	pending []byte
}

// Replay returns nc with b in front of what remains to be read from it. b
// becomes the connection's; Replay of no bytes is nc itself.
func Replay(nc net.Conn, b []byte) net.Conn {
	if len(b) == 0 {
		return nc
	}
	return &replayConn{Conn: nc, pending: b}
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		if len(r.pending) == 0 {
			r.pending = nil // let the bytes go
		}
		return n, nil
	}
	return r.Conn.Read(p)
}

// CloseWrite half-closes the socket, as the TCP proxy and the HTTP
// connection manager do on the raw connection.
func (r *replayConn) CloseWrite() error {
	if cw, ok := r.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// NetConn is the socket below, for code that needs its descriptor.
func (r *replayConn) NetConn() net.Conn { return r.Conn }

// transportBuffered reports whether a transport below the chain holds bytes
// the socket no longer shows.
func transportBuffered(nc net.Conn) bool {
	r, ok := nc.(*replayConn)
	return ok && len(r.pending) > 0
}

package connpool

import (
	"net"
	"time"
)

// What a peek at an idle connection's socket found.
type idleState uint8

const (
	idleQuiet  idleState = iota // nothing arrived
	idleData                    // bytes arrived
	idleClosed                  // EOF, a reset or another error
)

// checkIdle reports whether a connection from the free list may carry the
// next request. Nothing may have arrived while it sat there: bytes are an
// answer to no request (a hostile or broken upstream, a late body on a
// HEAD, 204 or 304 response) and would reach the next client as its
// response; EOF or a reset means the upstream closed it. The check is one
// non-blocking peek per reuse rather than a goroutine watching each idle
// connection, which would cost a stack per connection and a wake-up and
// hand-off per request.
//
// A bytes-arrived-later race remains, as in every HTTP/1.1 pool: a peer
// that sends stray bytes only after the next request went out is read as
// that request's answer. Stray bytes that come with the response are
// caught by ClientConn.Stray when the response ends.
func (c *h1conn) checkIdle() bool {
	st := c.peekSocket()
	if c.nc != net.Conn(c.cnt) && st != idleClosed {
		return c.checkTLS(st == idleData)
	}
	switch st {
	case idleQuiet:
		return true
	case idleData:
		c.p.stats.UpstreamCxProtocolError.Inc()
	default:
		c.cnt.MarkRemote()
	}
	return false
}

// tlsSettle bounds the wait for TLS records that arrived while idle to be
// processed: they are most likely post-handshake messages (session
// tickets, key updates), which are not stray application data.
const tlsSettle = 5 * time.Millisecond

// checkTLS tells a TLS connection's stray application data from TLS's own
// records. With nothing on the socket, a read with a past deadline sees
// only plaintext TLS decrypted earlier but the codec did not take (no
// system call); with records pending, the read processes them.
func (c *h1conn) checkTLS(pending bool) bool {
	d := aLongTimeAgo
	if pending {
		d = time.Now().Add(tlsSettle)
	}
	c.nc.SetReadDeadline(d)
	n, err := c.nc.Read(c.peekBuf[:])
	c.nc.SetReadDeadline(time.Time{})
	switch {
	case n > 0:
		c.p.stats.UpstreamCxProtocolError.Inc()
		return false
	case isTimeout(err):
		return true
	default:
		c.cnt.MarkRemote()
		return false
	}
}

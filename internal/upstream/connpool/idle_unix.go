//go:build unix

package connpool

import "syscall"

// peekSocket looks, without waiting or consuming, at what the socket under
// an idle connection holds. Go's sockets are non-blocking, so MSG_PEEK
// alone returns EAGAIN when nothing arrived.
func (c *h1conn) peekSocket() idleState {
	if c.raw == nil {
		return idleQuiet
	}
	c.peekN, c.peekErrno = 0, 0
	if err := c.raw.Read(c.peekFn); err != nil {
		return idleClosed
	}
	switch {
	case c.peekErrno == syscall.EAGAIN || c.peekErrno == syscall.EWOULDBLOCK || c.peekErrno == syscall.EINTR:
		return idleQuiet
	case c.peekErrno != 0 || c.peekN == 0:
		return idleClosed
	default:
		return idleData
	}
}

// peek is the RawConn callback; it returns true so Read never waits.
func (c *h1conn) peek(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK)
	c.peekN = n
	if errno, ok := err.(syscall.Errno); ok {
		c.peekErrno = errno
	} else if err != nil {
		c.peekErrno = syscall.EIO
	}
	return true
}

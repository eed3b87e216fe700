package h2

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// readBufSize is the pooled read buffer: a few frames per read syscall.
const readBufSize = 16 << 10

var readBufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// connReader buffers socket reads for the framer, holding a pooled buffer
// only while bytes are buffered or a stream is open: an idle connection
// reads straight into the framer's 9-byte header array, so it waits with
// no buffer.
type connReader struct {
	nc   net.Conn
	sc   *ServerConn
	buf  *[]byte
	r, w int
	// boundary: no byte of the frame being read has been consumed, so a
	// read timeout here leaves the framer consistent.
	boundary bool
	// midFrame: the read deadline is FrameTimeout's.
	midFrame bool
}

func (c *connReader) buffered() int { return c.w - c.r }

func (c *connReader) Read(p []byte) (int, error) {
	for c.r == c.w {
		var n int
		var err error
		if !c.boundary && c.sc.cfg.FrameTimeout > 0 {
			// A frame has begun and the rest must be waited for: a client
			// trickling a frame (a header block a byte at a time) gets
			// FrameTimeout for it, not the idle timeout.
			c.nc.SetReadDeadline(time.Now().Add(c.sc.cfg.FrameTimeout))
			c.sc.idleDeadline.Store(false)
			c.midFrame = true
		}
		direct := c.boundary && c.sc.idle()
		if direct || len(p) >= readBufSize {
			n, err = c.nc.Read(p)
			if n > 0 {
				c.boundary = false
				if c.midFrame {
					c.midFrame = false
					c.nc.SetReadDeadline(time.Time{})
				}
				return n, err
			}
		} else {
			if c.buf == nil {
				c.buf = readBufPool.Get().(*[]byte)
			}
			n, err = c.nc.Read(*c.buf)
			c.r, c.w = 0, n
			if n > 0 {
				break
			}
			c.release()
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || !c.sc.idleDeadline.Load() {
			return 0, err
		}
		// The idle deadline fired: it counts only with no stream open
		// and between frames; otherwise a stream opened since it was set
		// and reading goes on.
		if c.boundary && c.sc.idle() {
			if c.sc.graceDeadline.Load() {
				c.nc.SetReadDeadline(time.Time{})
				c.sc.idleDeadline.Store(false)
				return 0, ErrIdle
			}
			return 0, err
		}
		c.sc.idleDeadline.Store(false)
		c.nc.SetReadDeadline(time.Time{})
	}
	c.boundary = false
	if c.midFrame {
		// The next blocking read at a frame boundary re-arms the idle
		// deadline if there is one (ServerConn.setReadDeadline).
		c.midFrame = false
		c.nc.SetReadDeadline(time.Time{})
	}
	n := copy(p, (*c.buf)[c.r:c.w])
	c.r += n
	if c.r == c.w {
		c.release()
	}
	return n, nil
}

func (c *connReader) release() {
	if c.buf != nil && c.r == c.w {
		readBufPool.Put(c.buf)
		c.buf = nil
		c.r, c.w = 0, 0
	}
}

// Outbound frames are encoded straight into the queue.

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func appendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, id uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

// reserveLocked checks a frame against the outbound flood limits before it
// is queued; on a flood the connection is closed and false returned.
func (sc *ServerConn) reserveLocked(control bool, force bool) bool {
	if sc.dead {
		return false
	}
	if force {
		return true
	}
	frames := sc.outN.frames + sc.flight.frames + 1
	if frames > int(sc.cfg.MaxOutboundFrames) {
		sc.st.OutboundFlood.Inc()
		sc.failLocked()
		return false
	}
	if control && sc.outN.control+sc.flight.control+1 > int(sc.cfg.MaxOutboundControlFrames) {
		sc.st.OutboundControlFlood.Inc()
		sc.failLocked()
		return false
	}
	return true
}

func (sc *ServerConn) outBuf() []byte {
	if sc.out == nil {
		sc.out = (*writeBufPool.Get().(*[]byte))[:0]
	}
	return sc.out
}

// queuedLocked records a queued frame and makes sure a writer runs.
func (sc *ServerConn) queuedLocked(c queueCount) {
	sc.outN.add(c)
	if !sc.writing {
		sc.writing = true
		go sc.writeLoop()
	}
}

func (sc *ServerConn) queueControlLocked(t http2.FrameType, flags http2.Flags, id uint32, payload []byte, force bool) {
	if !sc.reserveLocked(true, force) {
		return
	}
	b := appendFrameHeader(sc.outBuf(), len(payload), t, flags, id)
	sc.out = append(b, payload...)
	sc.queuedLocked(queueCount{frames: 1, control: 1})
}

func (sc *ServerConn) queueSettingsLocked() {
	var p []byte
	set := func(id http2.SettingID, v uint32) {
		p = binary.BigEndian.AppendUint16(p, uint16(id))
		p = binary.BigEndian.AppendUint32(p, v)
	}
	set(http2.SettingMaxConcurrentStreams, sc.cfg.MaxConcurrentStreams)
	set(http2.SettingInitialWindowSize, sc.cfg.InitialStreamWindow)
	set(http2.SettingMaxHeaderListSize, uint32(sc.cfg.MaxHeaderBytes))
	set(http2.SettingEnablePush, 0)
	sc.queueControlLocked(http2.FrameSettings, 0, 0, p, true)
	sc.recvWindow = int32(sc.cfg.InitialConnWindow)
	if d := sc.cfg.InitialConnWindow - 65535; d > 0 {
		sc.queueWindowUpdateLocked(0, d)
	}
}

func (sc *ServerConn) queueWindowUpdateLocked(id, inc uint32) {
	if !sc.reserveLocked(false, false) {
		return
	}
	b := appendFrameHeader(sc.outBuf(), 4, http2.FrameWindowUpdate, 0, id)
	sc.out = binary.BigEndian.AppendUint32(b, inc)
	sc.queuedLocked(queueCount{frames: 1})
}

func (sc *ServerConn) queueRSTLocked(id uint32, code http2.ErrCode) {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(code))
	sc.queueControlLocked(http2.FrameRSTStream, 0, id, p[:], false)
	sc.st.TxReset.Inc()
}

// sendGoAwayLocked sends GOAWAY once; later calls only raise nothing.
func (sc *ServerConn) sendGoAwayLocked(code http2.ErrCode) {
	if sc.goAway || sc.dead {
		return
	}
	sc.goAway = true
	sc.st.GoawaySent.Inc()
	var p [8]byte
	binary.BigEndian.PutUint32(p[:4], sc.maxClientID)
	binary.BigEndian.PutUint32(p[4:], uint32(code))
	sc.queueControlLocked(http2.FrameGoAway, 0, 0, p[:], true)
}

// queueDataLocked queues one DATA frame.
func (sc *ServerConn) queueDataLocked(id uint32, p []byte, end bool) bool {
	if !sc.reserveLocked(false, false) {
		return false
	}
	var flags http2.Flags
	if end {
		flags = http2.FlagDataEndStream
	}
	b := appendFrameHeader(sc.outBuf(), len(p), http2.FrameData, flags, id)
	sc.out = append(b, p...)
	sc.dataSent++
	sc.st.PendingSendBytes.Add(int64(len(p)))
	sc.queuedLocked(queueCount{frames: 1, data: len(p)})
	return true
}

// queueHeadersLocked encodes a header block (fields already in hbuf) as
// HEADERS plus CONTINUATION frames no larger than the peer allows.
func (sc *ServerConn) queueHeadersLocked(id uint32, end bool) bool {
	block := sc.hbuf.b
	frames := 1 + (max(len(block)-1, 0))/int(sc.peerMaxFrame)
	for range frames {
		if !sc.reserveLocked(false, false) {
			return false
		}
	}
	first := true
	for first || len(block) > 0 {
		n := min(len(block), int(sc.peerMaxFrame))
		var flags http2.Flags
		t := http2.FrameContinuation
		if first {
			t = http2.FrameHeaders
			if end {
				flags |= http2.FlagHeadersEndStream
			}
		}
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		b := appendFrameHeader(sc.outBuf(), n, t, flags, id)
		sc.out = append(b, block[:n]...)
		block = block[n:]
		first = false
	}
	sc.queuedLocked(queueCount{frames: frames})
	sc.hbuf.b = sc.hbuf.b[:0]
	return true
}

// writeLoop writes the queue to the socket and exits when it is empty, so
// an idle connection has no writer goroutine and no write buffer.
func (sc *ServerConn) writeLoop() {
	sc.mu.Lock()
	for len(sc.out) > 0 && !sc.dead {
		buf := sc.out
		sc.out = nil
		sc.flight = sc.outN
		sc.outN = queueCount{}
		closing := sc.closing
		sc.mu.Unlock()
		switch {
		case closing:
			sc.nc.SetWriteDeadline(time.Now().Add(closeGrace))
		case sc.cfg.WriteTimeout > 0:
			sc.nc.SetWriteDeadline(time.Now().Add(sc.cfg.WriteTimeout))
		}
		_, err := sc.nc.Write(buf)
		sc.mu.Lock()
		if cap(buf) <= 64<<10 {
			buf = buf[:0]
			writeBufPool.Put(&buf)
		}
		sc.st.PendingSendBytes.Add(-int64(sc.flight.data))
		sc.flight = queueCount{}
		if err != nil {
			sc.closing = false
			sc.failLocked()
		}
		sc.wcond.Broadcast()
	}
	sc.writing = false
	if sc.closing || sc.dead {
		sc.failLocked()
	}
	sc.mu.Unlock()
}

// closeGrace bounds flushing a final GOAWAY and reading the peer's last
// bytes before the socket closes.
const closeGrace = time.Second

// closeAfterFlushLocked closes the connection once queued frames (a
// GOAWAY) are written.
func (sc *ServerConn) closeAfterFlushLocked() {
	if sc.dead {
		return
	}
	sc.closing = true
	if sc.writing {
		sc.nc.SetWriteDeadline(time.Now().Add(closeGrace))
		return
	}
	sc.failLocked()
}

// failLocked ends the connection: every stream is cancelled and every
// waiting writer and reader wakes. Once no write is in progress the socket
// is shut: after a GOAWAY (closing) only its write side, so the peer reads
// the GOAWAY rather than a reset its unread bytes would cause, and Serve
// closes it after a short drain; otherwise at once.
func (sc *ServerConn) failLocked() {
	if !sc.dead {
		sc.dead = true
		if n := sc.outN.data; n > 0 {
			sc.st.PendingSendBytes.Add(-int64(n))
		}
		sc.outN = queueCount{}
		if !sc.writing {
			sc.out = nil
		}
		for _, st := range sc.streams {
			st.closeLocked(errConnClosed)
			sc.removeLocked(st, false)
		}
		for _, st := range sc.pending {
			st.closeLocked(errConnClosed)
		}
		sc.pending = nil
		sc.wcond.Broadcast()
	}
	if sc.writing {
		return // the writer calls again when its write returns
	}
	sc.closeOnce.Do(func() {
		cw, ok := sc.nc.(interface{ CloseWrite() error })
		if ok && sc.closing {
			cw.CloseWrite()
			sc.nc.SetReadDeadline(time.Now().Add(closeGrace))
		} else {
			sc.nc.Close()
		}
		close(sc.closed)
	})
}

package networkfilter

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// ErrClosed is what the terminal filter's reads and writes return once a
// non-terminal filter has closed the connection. It matches net.ErrClosed.
var ErrClosed = fmt.Errorf("%w by a network filter", net.ErrClosed)

// session wraps a connection whose filters see its bytes: the terminal
// filter reads and writes through it, and the filters' data callbacks run
// inside those calls, on the caller's goroutine.
//
// Reads go straight into the caller's buffer; when every filter continues
// without replacing the bytes, that is all (no copy, no allocation). Bytes
// a filter holds back, or a replacement longer than the caller's buffer,
// are copied into storage the session keeps for the connection.
type session struct {
	net.Conn // the transport below the chain
	ch       *Chain
	c        *Conn
	insts    []Instance
	arr      [4]Instance
	closed   atomic.Bool

	// Read side: only the reading goroutine touches these.
	rbuf    Buffer
	rheld   [][]byte // per filter: bytes it stopped on; nil until one holds
	pending []byte   // filtered bytes not yet returned to the reader
	pendBuf []byte   // pending's storage
	rerr    error    // sticky: io.EOF once the downstream ended, or ErrClosed

	// Write side: writes are serialized, since a net.Conn may be
	// written from several goroutines.
	wmu   sync.Mutex
	wbuf  Buffer
	wheld [][]byte
	wend  bool // OnWrite saw endStream
}

// Close closes the transport; the terminal filter's blocked reads and
// writes return.
func (s *session) Close() error {
	s.closed.Store(true)
	return s.Conn.Close()
}

func (s *session) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(s.pending) > 0 {
			n := copy(p, s.pending)
			s.pending = s.pending[n:]
			return n, nil
		}
		if s.rerr != nil {
			return 0, s.rerr
		}
		if s.closed.Load() {
			s.rerr = ErrClosed
			return 0, s.rerr
		}
		n, err := s.Conn.Read(p)
		end := err == io.EOF
		if n == 0 && !end {
			return 0, err
		}
		out := s.run(s.ch.readers, &s.rheld, &s.rbuf, p[:n], end, false)
		if s.closed.Load() {
			s.rerr = ErrClosed
			return 0, s.rerr
		}
		if end {
			s.rerr = io.EOF
			err = nil // returned on the next call, after the bytes
		}
		if len(out) > 0 {
			if &out[0] == &p[0] {
				return len(out), err // untouched, or cut short in place
			}
			m := copy(p, out) // a replacement, held bytes, or a drained tail of p
			if m < len(out) {
				s.pendBuf = append(s.pendBuf[:0], out[m:]...)
				s.pending = s.pendBuf
			}
			return m, err
		}
		if err != nil {
			return 0, err
		}
		// Everything was held back or drained: read on.
	}
}

// run passes data through the filters in order (the read filters' OnData,
// or the write filters' OnWrite) and returns what leaves the last one.
// Bytes a filter held before go on ahead of data once it continues; each
// filter sees each byte once unless it holds it. held and buf are the
// side's own.
func (s *session) run(order []int, held *[][]byte, buf *Buffer, data []byte, end, write bool) []byte {
	for _, i := range order {
		if *held != nil && len((*held)[i]) > 0 {
			data = append((*held)[i], data...)
			(*held)[i] = data[:0] // the storage is reused; data is copied out before the next call
		}
		buf.b = data
		var st Status
		if write {
			st = s.insts[i].OnWrite(s.c, buf, end)
		} else {
			st = s.insts[i].OnData(s.c, buf, end)
		}
		data = buf.b
		buf.b = nil
		if st == StopIteration || s.closed.Load() {
			if len(data) > 0 && !s.closed.Load() {
				*held = hold(*held, len(s.ch.filters), i, data)
			}
			return nil
		}
	}
	return data
}

// hold copies data into held[i], allocating the per-filter slots the first
// time a filter holds.
func hold(held [][]byte, n, i int, data []byte) [][]byte {
	if held == nil {
		held = make([][]byte, n)
	}
	held[i] = append(held[i][:0], data...)
	return held
}

func (s *session) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	out := s.run(s.ch.writers, &s.wheld, &s.wbuf, p, false, true)
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if len(out) > 0 {
		if _, err := s.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// CloseWrite ends the write side: the write filters see endStream (and may
// flush what they held), then the transport half-closes.
func (s *session) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if !s.wend {
		s.wend = true
		if out := s.run(s.ch.writers, &s.wheld, &s.wbuf, nil, true, true); len(out) > 0 {
			if _, err := s.Conn.Write(out); err != nil {
				return err
			}
		}
	}
	if cw, ok := s.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// buffered reports bytes held by the chain or its filters; see
// Conn.Buffered.
func (s *session) buffered() bool {
	if len(s.pending) > 0 || anyHeld(s.rheld) {
		return true
	}
	s.wmu.Lock()
	w := anyHeld(s.wheld)
	s.wmu.Unlock()
	if w {
		return true
	}
	for _, in := range s.insts {
		if in.Buffered() {
			return true
		}
	}
	return false
}

func anyHeld(held [][]byte) bool {
	for _, h := range held {
		if len(h) > 0 {
			return true
		}
	}
	return false
}

package http1

import (
	"bytes"
	"github.com/legate-proxy/legate/internal/http/message"
	"net"
	"testing"
	"time"
)

// memConn is an in-memory byte stream standing in for a socket where the
// tests are about parsing, not the network (table, fuzz and benchmark
// tests); connection behaviour is tested over loopback TCP.
type memConn struct {
	r bytes.Reader
	w bytes.Buffer
}

func newMemConn(in string) *memConn {
	c := &memConn{}
	c.r.Reset([]byte(in))
	return c
}

func (c *memConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)        { return c.w.Write(p) }
func (c *memConn) Close() error                       { return nil }
func (c *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

// loopback returns both ends of a real TCP connection on 127.0.0.1.
func loopback(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { cc.Close(); r.c.Close() })
	deadline := time.Now().Add(20 * time.Second)
	cc.SetDeadline(deadline)
	r.c.SetDeadline(deadline)
	return cc.(*net.TCPConn), r.c.(*net.TCPConn)
}

func dial(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.SetDeadline(time.Now().Add(20 * time.Second))
	}
	return c, err
}

// hdrs builds Headers from name, value pairs.
func hdrs(kv ...string) message.Headers {
	h := make(message.Headers, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, message.Header{Name: kv[i], Value: kv[i+1]})
	}
	return h
}

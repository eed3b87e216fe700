package listener

import (
	"net"
	"sync/atomic"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// buildAccessLogs compiles the listener's access_log. Envoy writes one
// entry per downstream connection, when it closes; a listener without
// access_log pays nothing per connection.
func buildAccessLogs(pb *listenerv3.Listener, fc *networkfilter.FactoryContext) (accesslog.Loggers, error) {
	return accesslog.New(pb.GetAccessLog(), accesslog.Deps{
		Stats: fc.Stats, Runtime: fc.Runtime, Files: fc.AccessLogFiles, Logger: fc.Logger,
		Clusters: fc.Clusters, NodeID: fc.NodeID, ClusterName: fc.ClusterName,
	})
}

// connLog is what a logged connection records. Its StreamInfo is shared
// with the network filter (Conn.Info), so what the filter learns (the
// TCP proxy's upstream host, response flags) shows in the listener's line.
type connLog struct {
	info  streaminfo.StreamInfo
	start time.Time
	cc    *countingConn
}

func newConnLog(c *networkfilter.Conn, start time.Time) *connLog {
	cl := &connLog{start: start}
	si := &cl.info
	si.StartTime = start
	si.ConnectionID = c.ID
	si.DownstreamRemoteAddr = c.RemoteAddr
	si.DownstreamDirectAddr = c.RemoteAddr
	si.DownstreamLocalAddr = c.LocalAddr
	c.Info = si
	return cl
}

// attach runs once the transport is up: it records the SNI and counts the
// connection's (decrypted) bytes from here on.
func (cl *connLog) attach(c *networkfilter.Conn) {
	if c.TLS != nil {
		cl.info.RequestedServerName = c.TLS.ServerName
	}
	cl.cc = &countingConn{Conn: c.Conn}
	c.Conn = cl.cc
}

// logConn writes the connection's entry; the filter has returned, so
// nothing else touches the stream info any more.
func (l *Listener) logConn(cl *connLog) {
	si := &cl.info
	if cl.cc != nil {
		si.BytesReceived, si.BytesSent = cl.cc.rx.Load(), cl.cc.tx.Load()
	}
	si.LastDownstreamTxByte = time.Since(cl.start)
	l.accessLogs.Log(&formatter.Context{Info: si})
}

// NetConn is the counted transport, for networkfilter.RawSocket.
func (cc *countingConn) NetConn() net.Conn { return cc.Conn }

// countingConn counts bytes for the connection's log entry. Reads and
// writes may come from different goroutines, hence the atomics.
type countingConn struct {
	net.Conn
	rx, tx atomic.Uint64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.rx.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.tx.Add(uint64(n))
	return n, err
}

// CloseWrite keeps half-close working through the wrapper.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

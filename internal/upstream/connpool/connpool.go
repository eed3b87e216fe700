// Package connpool keeps per-host upstream connections: HTTP/1.1 keep-alive
// pools and multiplexed HTTP/2 connections.
package connpool

import (
	"context"
	"errors"
	"io"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// ResetReason says why an upstream stream failed before or after headers,
// in Envoy's words (used in "reset reason: %s" local replies).
type ResetReason uint8

const (
	ConnectionFailure        ResetReason = iota + 1 // "remote connection failure"
	ConnectionTimeout                               // "connection timeout"
	ConnectionTermination                           // "connection termination"
	LocalReset                                      // "local reset"
	RemoteReset                                     // "remote reset"
	RemoteRefusedStreamReset                        // "remote refused stream reset"
	Overflow                                        // "overflow"
	ProtocolError                                   // "protocol error"
)

// Error is a failed upstream exchange.
type Error struct {
	Reason ResetReason
	// TransportFailure is Envoy's "transport failure reason", e.g.
	// "delayed connect error: Connection refused"; may be empty.
	TransportFailure string
	Err              error
}

func (e *Error) Error() string { return "not implemented" }
func (e *Error) Unwrap() error { return e.Err }

// Pool is one host's connections.
type Pool struct {
	host    *cluster.Host
	cluster *cluster.Cluster
}

// New returns a pool for host; it dials lazily.
func New(c *cluster.Cluster, h *cluster.Host) *Pool { return &Pool{host: h, cluster: c} }

// RoundTrip sends req (streaming its body) and returns when the response
// headers arrive. The response body streams; reading it to io.EOF or
// closing it releases the connection. A 101 response to an Upgrade request
// returns an upgraded stream from Upgraded.
func (p *Pool) RoundTrip(ctx context.Context, req *message.Request) (*message.Response, error) {
	return nil, errors.New("connpool: not implemented")
}

// Upgraded returns the raw byte stream of a 101 response from RoundTrip.
func Upgraded(resp *message.Response) (io.ReadWriteCloser, bool) { return nil, false }

// Close closes idle connections now and busy ones when they finish.
func (p *Pool) Close() error { return nil }

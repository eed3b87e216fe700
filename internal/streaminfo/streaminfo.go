// Package streaminfo records what happened to one downstream request: the
// facts access logs, local replies, tracing and header substitutions read.
package streaminfo

import (
	"net/netip"
	"time"

	"github.com/legate-proxy/legate/internal/http/message"
)

// ResponseFlags is Envoy's set of response flags (%RESPONSE_FLAGS%).
type ResponseFlags uint32

const (
	FailedLocalHealthCheck           ResponseFlags = 1 << iota // LH
	NoHealthyUpstream                                          // UH
	UpstreamRequestTimeout                                     // UT
	LocalReset                                                 // LR
	UpstreamRemoteReset                                        // UR
	UpstreamConnectionFailure                                  // UF
	UpstreamConnectionTermination                              // UC
	UpstreamOverflow                                           // UO
	NoRouteFound                                               // NR
	DelayInjected                                              // DI
	FaultInjected                                              // FI
	RateLimited                                                // RL
	UpstreamRetryLimitExceeded                                 // URX
	StreamIdleTimeout                                          // SI
	DownstreamProtocolError                                    // DPE
	UpstreamProtocolError                                      // UPE
	NoClusterFound                                             // NC
	DurationTimeout                                            // DT
	DownstreamConnectionTermination                            // DC
	UpstreamMaxStreamDurationReached                           // UMSDR
	InvalidEnvoyRequestHeaders                                 // IH
	Overload                                                   // OM
)

// flagCodes are in Envoy's output order.
var flagCodes = []struct {
	flag ResponseFlags
	code string
}{
	{FailedLocalHealthCheck, "LH"}, {NoHealthyUpstream, "UH"}, {UpstreamRequestTimeout, "UT"},
	{LocalReset, "LR"}, {UpstreamRemoteReset, "UR"}, {UpstreamConnectionFailure, "UF"},
	{UpstreamConnectionTermination, "UC"}, {UpstreamOverflow, "UO"}, {NoRouteFound, "NR"},
	{DelayInjected, "DI"}, {FaultInjected, "FI"}, {RateLimited, "RL"},
	{UpstreamRetryLimitExceeded, "URX"}, {StreamIdleTimeout, "SI"}, {InvalidEnvoyRequestHeaders, "IH"}, {DownstreamProtocolError, "DPE"},
	{UpstreamProtocolError, "UPE"}, {NoClusterFound, "NC"}, {DurationTimeout, "DT"},
	{DownstreamConnectionTermination, "DC"}, {UpstreamMaxStreamDurationReached, "UMSDR"},
	{Overload, "OM"},
}

// String renders flags as Envoy does: comma-separated codes, "-" for none.
func (f ResponseFlags) String() string {
	if f == 0 {
		return "-"
	}
	return string(f.AppendTo(nil))
}

// AppendTo appends the comma-separated codes (nothing for none), for
// allocation-free access logs.
func (f ResponseFlags) AppendTo(b []byte) []byte {
	first := true
	for _, fc := range flagCodes {
		if f&fc.flag != 0 {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, fc.code...)
		}
	}
	return b
}

// StreamInfo is filled in as a request goes through the proxy. It is owned
// by the stream's goroutine; nothing else writes it.
type StreamInfo struct {
	StartTime time.Time
	// Monotonic offsets from StartTime; zero when not reached.
	// LastDownstreamRxByte: the request was received whole (headers, or
	// the body's end). FirstUpstreamTxByte: the request went upstream.
	// FirstUpstreamRxByte: response headers arrived. LastUpstreamRxByte:
	// the response body ended. LastDownstreamTxByte: the stream ended.
	LastDownstreamRxByte time.Duration
	FirstUpstreamTxByte  time.Duration
	FirstUpstreamRxByte  time.Duration
	LastUpstreamRxByte   time.Duration
	LastDownstreamTxByte time.Duration

	ConnectionID         uint64
	DownstreamRemoteAddr netip.AddrPort // after x-forwarded-for processing when use_remote_address
	DownstreamDirectAddr netip.AddrPort // the socket peer
	DownstreamLocalAddr  netip.AddrPort
	RequestedServerName  string // SNI
	Protocol             message.Protocol

	RouteName                      string
	UpstreamCluster                string
	UpstreamHost                   string // "ip:port"
	UpstreamLocalAddr              string
	UpstreamTransportFailureReason string

	ResponseCode        int
	ResponseCodeDetails string // e.g. "via_upstream", "route_not_found"
	Flags               ResponseFlags

	BytesReceived uint64 // request body bytes
	BytesSent     uint64 // response body bytes
	Attempts      uint32

	// Dynamic is the dynamic metadata and filter state filters set: the
	// connection's (networkfilter.Conn.Dynamic) for a connection's info,
	// the stream's (starting from its connection's) for a request's. Nil
	// reads as empty.
	Dynamic *Dynamic
}

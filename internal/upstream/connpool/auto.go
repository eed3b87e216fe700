package connpool

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/legate-proxy/legate/internal/http/message"
)

// roundTripAuto serves a request of an auto_config pool before ALPN has
// chosen: it dials, lets the handshake decide (h2 or HTTP/1.1, as Envoy's
// mixed pool), records the choice for the pool's later requests and
// sends the request on that connection.
func (p *Pool) roundTripAuto(ctx context.Context, req *message.Request) (*message.Response, error) {
	p.stats.UpstreamRqPendingTotal.Inc()
	p.stats.UpstreamRqPendingActive.Inc()
	nc, cnt, err := p.dial(ctx)
	p.stats.UpstreamRqPendingActive.Dec()
	if err != nil {
		return nil, err
	}
	if autoProtocol(nc) == protoH2 {
		p.stats.UpstreamCxHTTP2Total.Inc()
		p.proto.Store(protoH2)
		c, err := p.newH2Conn(nc, cnt)
		if err != nil {
			nc.Close()
			return nil, err
		}
		p.addH2(c)
		return p.roundTripH2(ctx, req)
	}
	p.stats.UpstreamCxHTTP1Total.Inc()
	p.proto.Store(protoH1)
	resp, err, _ := p.newH1Conn(nc, cnt).roundTrip(ctx, req)
	return resp, err
}

// autoProtocol is what ALPN chose on a dialled connection.
func autoProtocol(nc net.Conn) uint32 {
	if tc, ok := nc.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		return protoH2
	}
	return protoH1
}

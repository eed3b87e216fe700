package connpool

import (
	"context"
	"errors"
	"net"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/dialer"
)

// dial opens a connection to the host through the one upstream dialer
// (connect timeout, TLS, bind config, Envoy's connection stats). A failure
// is an *Error with Envoy's reset reason, or ctx's error when ctx ended
// first.
func (p *Pool) dial(ctx context.Context) (net.Conn, *dialer.Conn, error) {
	proto := dialer.HTTP1
	switch p.settings.Protocol {
	case cluster.HTTP2:
		proto = dialer.HTTP2
	case cluster.AutoHTTP:
		// Counted once ALPN has chosen (autoProtocol).
		proto = dialer.Raw
		if p.tlsConfig == nil {
			proto = dialer.HTTP1
		}
	}
	nc, raw, err := dialer.Dial(ctx, dialer.Target{
		Stats: p.stats, Host: p.host, Settings: &p.settings, TLS: p.tlsConfig, Protocol: proto,
	})
	if err != nil {
		var de *dialer.Error
		if errors.As(err, &de) {
			return nil, nil, connectError(de.Err)
		}
		return nil, nil, err
	}
	return nc, raw, nil
}

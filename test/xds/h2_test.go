package xds_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"golang.org/x/net/http2"

	"github.com/legate-proxy/legate/test/legatetest"
)

// h2TLSListener is httpListener terminating TLS with an inline certificate
// and offering h2 (then http/1.1) over ALPN.
func h2TLSListener(t testing.TB, m Mode, name string, port int, statPrefix string, c cert) *listenerv3.Listener {
	l := httpListener(t, name, port, hcmOpts{StatPrefix: statPrefix, RDS: "rc_main", Source: m.Source()})
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{
		Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{
				AlpnProtocols: []string{"h2", "http/1.1"},
				TlsCertificates: []*tlsv3.TlsCertificate{{
					CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.certPEM}},
					PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.keyPEM}},
				}},
			},
		})},
	}
	return l
}

// h2Client is an HTTP/2-only client: prior knowledge on cleartext (h2c)
// when trust is nil, else TLS with ALPN h2 trusting that certificate. dials
// counts the connections it opens.
//
// It is x/net's Transport, deprecated in favour of net/http's: that one
// dials a connection per waiting request when it has none, where this one
// dials once and multiplexes every concurrent stream on that connection,
// which is what the test wants to see across a drain.
func h2Client(trust *x509.Certificate, dials *atomic.Int64) *http.Client {
	d := net.Dialer{Timeout: 5 * time.Second}
	//lint:ignore SA1019 see above
	tr := &http2.Transport{}
	if trust == nil {
		//lint:ignore SA1019 see above
		tr.AllowHTTP = true
		//lint:ignore SA1019 see above
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		}
	} else {
		pool := x509.NewCertPool()
		pool.AddCert(trust)
		//lint:ignore SA1019 see above
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			dials.Add(1)
			td := tls.Dialer{NetDialer: &d, Config: &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}}
			c, err := td.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
				c.Close()
				return nil, fmt.Errorf("ALPN negotiated %q, want h2", p)
			}
			return c, nil
		}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// TestHTTP2AcrossListenerChanges keeps HTTP/2 clients (h2c with prior
// knowledge, and TLS with ALPN h2) busy with many concurrent streams on
// few connections while both listeners change every 100 ms. Connections of
// a replaced listener drain: the client must be told (GOAWAY) and move to
// the new listener without a single request failing.
func TestHTTP2AcrossListenerChanges(t *testing.T) {
	t.Parallel()
	m := modes[0]
	a := startUpstream(t, "a")
	crt := newCert(t, 1)
	tlsPort := legatetest.FreePort(t)
	world := func(port, gen int) World {
		prefix := fmt.Sprintf("h2_gen%d", gen%2)
		w := baseWorld(t, m, port, a, a, "svc_a")
		w.Listeners = []types.Resource{
			httpListener(t, "main", port, hcmOpts{StatPrefix: prefix, RDS: "rc_main", Source: m.Source()}),
			h2TLSListener(t, m, "tls", tlsPort, prefix+"_tls", crt),
		}
		return w
	}
	var h2cPort int
	d := startDyn(t, m, "/h2", "a", func(port int) World { h2cPort = port; return world(port, 0) })
	cp, l := d.CP, d.Legate
	tlsURL := "https://127.0.0.1:" + strconv.Itoa(tlsPort) + "/h2"

	valid := func(ans answer) bool { return ans.Body == "a" && ans.Proto == 2 }
	var h2cDials, tlsDials atomic.Int64
	type load struct {
		name  string
		l     *Load
		dials *atomic.Int64
	}
	// Two h2c transports (each multiplexing its workers' streams on one
	// connection) and one TLS transport.
	loads := []load{
		{"h2c", startLoadClient(t, h2Client(nil, &h2cDials), d.URL, 16, valid), &h2cDials},
		{"h2c (second client)", startLoadClient(t, h2Client(nil, &h2cDials), d.URL, 16, valid), &h2cDials},
		{"h2 over TLS", startLoadClient(t, h2Client(crt.x509, &tlsDials), tlsURL, 16, valid), &tlsDials},
	}
	for _, ld := range loads {
		ld.l.waitProgress(t, 100)
	}
	dialsBefore := h2cDials.Load() + tlsDials.Load()
	modifiedBefore, _ := l.Stat(t, "listener_manager.listener_modified")

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	const generations = 50 // 5 s at 100 ms
	for gen := 1; gen <= generations; gen++ {
		<-tick.C
		cp.Set(world(h2cPort, gen).Resources())
		// On a slow machine the test runs longer rather than changing
		// listeners faster than requests go through.
		for _, ld := range loads {
			ld.l.waitProgress(t, 10)
		}
	}
	// The listeners were modified (both, many times) ...
	l.waitStat(t, "listener_manager.listener_modified", fmt.Sprintf(">= %d", modifiedBefore+20),
		func(v int64) bool { return v >= modifiedBefore+20 })
	// ... and the clients moved to new connections, which they only do when
	// the old ones are drained, so the drain reached them.
	eventually(t, waitTimeout, func() bool { return h2cDials.Load()+tlsDials.Load() > dialsBefore+4 },
		func() string {
			return fmt.Sprintf("HTTP/2 clients opened %d connections during 50 listener changes, started with %d: old connections were never drained",
				h2cDials.Load()+tlsDials.Load(), dialsBefore)
		})
	for _, ld := range loads {
		ld.l.waitProgress(t, 100)
	}
	for _, ld := range loads {
		ok, failed, fails := ld.l.Stop()
		t.Logf("%s: %d requests succeeded, %d failed, %d connections", ld.name, ok, failed, ld.dials.Load())
		if failed != 0 {
			t.Errorf("%s: %d of %d requests failed across listener changes; first: %q", ld.name, failed, ok+failed, fails)
		}
	}
	// Every request was HTTP/2: the listeners counted HTTP/2 connections.
	st := l.Stats(t)
	for _, name := range []string{"http.h2_gen0.downstream_cx_http2_total", "http.h2_gen0_tls.downstream_cx_http2_total"} {
		if v, _ := strconv.ParseInt(st[name], 10, 64); v < 1 {
			t.Errorf("%s = %q, want >= 1", name, st[name])
		}
	}
}

package tracing

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/legate-proxy/legate/internal/grpcclient"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// clusterTLS is the cluster's upstream TLS config for a client that wants
// protos negotiated over ALPN.
func clusterTLS(c *cluster.Cluster, protos ...string) *tls.Config {
	cfg := c.Settings.TLS.Clone()
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = protos
	}
	return cfg
}

// httpTarget posts reports to a path on a cluster.
type httpTarget struct {
	client  *http.Client
	url     string
	host    string
	headers [][2]string
	ctype   string
	cluster *cluster.Ref
	// last is the cluster the pooled connections were dialled through;
	// when CDS replaces it they are dropped, as Envoy drains a replaced
	// cluster's pools.
	last atomic.Pointer[cluster.Cluster]
}

// newHTTPTarget builds a client for the collector cluster behind ref,
// which must be active now: its TLS and protocol settings shape the
// client (a later CDS change of those is not followed; its hosts are).
// host is the Host header; path the request path.
func newHTTPTarget(ref *cluster.Ref, host, path, ctype string, headers [][2]string) (*httpTarget, error) {
	c := ref.Load()
	if c == nil {
		return nil, fmt.Errorf("unknown cluster %q", ref.Name())
	}
	dial := grpcclient.DialCluster(ref)
	var rt http.RoundTripper
	scheme := "http"
	switch {
	case c.Settings.TLS != nil:
		scheme = "https"
		protos := []string{"http/1.1"}
		if c.Settings.Protocol == cluster.HTTP2 {
			protos = []string{"h2"}
		}
		cfg := clusterTLS(c, protos...)
		rt = &http.Transport{
			DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				nc, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				tc := tls.Client(nc, cfg)
				if err := tc.HandshakeContext(ctx); err != nil {
					nc.Close()
					return nil, err
				}
				return tc, nil
			},
			ForceAttemptHTTP2:   c.Settings.Protocol == cluster.HTTP2,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     time.Minute,
		}
	case c.Settings.Protocol == cluster.HTTP2:
		// h2c with prior knowledge, as Envoy speaks to a plaintext HTTP/2 cluster.
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		rt = &http.Transport{Protocols: &p, DialContext: dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	default:
		rt = &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := scheme + "://" + host + path
	if _, err := url.Parse(u); err != nil {
		return nil, fmt.Errorf("collector URL %q: %w", u, err)
	}
	return &httpTarget{client: &http.Client{Transport: rt}, url: u, host: host, headers: headers, ctype: ctype, cluster: ref}, nil
}

// post sends body; it returns the response status, or an error when no
// response came.
func (h *httpTarget) post(ctx context.Context, body []byte) (int, error) {
	if c := h.cluster.Load(); h.last.Swap(c) != c {
		h.client.CloseIdleConnections()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Host = h.host
	req.Header.Set("Content-Type", h.ctype)
	for _, kv := range h.headers {
		req.Header.Add(kv[0], kv[1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (h *httpTarget) close() { h.client.CloseIdleConnections() }

// httpService resolves an HttpService: the cluster, the Host header (the
// URI's authority, else the cluster name), the path, the timeout and the
// extra headers.
func httpService(s *corev3.HttpService, clusters *cluster.Manager) (c *cluster.Ref, host, path string, timeout time.Duration, headers [][2]string, err error) {
	hu := s.GetHttpUri()
	name := hu.GetCluster()
	if name == "" {
		return nil, "", "", 0, nil, fmt.Errorf("http_uri.cluster: is required")
	}
	if c = lookupCluster(clusters, name); c == nil {
		return nil, "", "", 0, nil, fmt.Errorf("http_uri.cluster: unknown cluster %q", name)
	}
	raw := hu.GetUri()
	host, path = name, raw
	if i := strings.Index(raw, "://"); i >= 0 {
		u, perr := url.Parse(raw)
		if perr != nil {
			return nil, "", "", 0, nil, fmt.Errorf("http_uri.uri: %w", perr)
		}
		host, path = u.Host, u.RequestURI()
	}
	if path == "" {
		return nil, "", "", 0, nil, fmt.Errorf("http_uri.uri: is required")
	}
	if d := hu.GetTimeout(); d != nil {
		timeout = d.AsDuration()
	}
	for i, hv := range s.GetRequestHeadersToAdd() {
		k := hv.GetHeader().GetKey()
		if k == "" {
			return nil, "", "", 0, nil, fmt.Errorf("request_headers_to_add[%d].header.key: must not be empty", i)
		}
		headers = append(headers, [2]string{k, hv.GetHeader().GetValue()})
	}
	return c, host, path, timeout, headers, nil
}

// lookupCluster returns the Ref of name when that cluster is active now
// (tracers need it at config time, as Envoy checks), else nil.
func lookupCluster(m *cluster.Manager, name string) *cluster.Ref {
	if m == nil {
		return nil
	}
	r := m.Ref(name)
	if r.Load() == nil {
		return nil
	}
	return r
}

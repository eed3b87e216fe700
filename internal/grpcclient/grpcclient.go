// Package grpcclient is the one gRPC client Legate uses towards a control
// plane or a collector: xDS, trace exporters, access log services and the
// metrics service all resolve their Envoy GrpcService here.
//
// An envoy_grpc service goes through the cluster manager as Envoy's async
// client does: every new connection picks a host from the cluster (loaded
// afresh, so CDS and EDS changes apply) and dials it with the cluster's
// connect timeout and TLS. google_grpc dials its target URI directly.
package grpcclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/legate-proxy/legate/internal/tlscontext"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/dialer"
)

// Service is a resolved GrpcService. It is immutable; Dial may be called
// any number of times (xDS redials after a stream fails).
type Service struct {
	// Name is for logs: "envoy_grpc xds_cluster", "google_grpc host:port".
	Name string
	// Timeout is GrpcService.timeout: the deadline of one unary call
	// (zero: none). Long-lived streams ignore it, as in Envoy.
	Timeout time.Duration
	// MD is initial_metadata, sent on every call and stream (nil: none).
	MD metadata.MD

	target string
	opts   []grpc.DialOption
}

// Errors a dial through a cluster reports.
var (
	ErrNoHost    = errors.New("no healthy upstream")
	ErrNoCluster = errors.New("no such cluster (removed)")
)

// New resolves gs; field is its config path, for errors. For envoy_grpc
// the cluster must be active in cm now (Envoy checks it at config time)
// and speak HTTP/2.
func New(gs *corev3.GrpcService, cm *cluster.Manager, field string) (*Service, error) {
	s := &Service{}
	if d := gs.GetTimeout(); d != nil {
		s.Timeout = d.AsDuration()
	}
	for i, h := range gs.GetInitialMetadata() {
		if h.GetKey() == "" {
			return nil, fmt.Errorf("%s.initial_metadata[%d].key: must not be empty", field, i)
		}
		if s.MD == nil {
			s.MD = metadata.MD{}
		}
		s.MD.Append(strings.ToLower(h.GetKey()), h.GetValue())
	}
	var err error
	switch {
	case gs.GetEnvoyGrpc() != nil:
		err = s.envoyGRPC(gs.GetEnvoyGrpc(), cm, field+".envoy_grpc")
	case gs.GetGoogleGrpc() != nil:
		err = s.googleGRPC(gs.GetGoogleGrpc(), field+".google_grpc")
	default:
		err = fmt.Errorf("%s: one of envoy_grpc or google_grpc must be set", field)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Dial returns a new connection; it connects lazily, on first use.
func (s *Service) Dial() (*grpc.ClientConn, error) {
	return grpc.NewClient(s.target, s.opts...)
}

// Outgoing adds the service's metadata to ctx.
func (s *Service) Outgoing(ctx context.Context) context.Context {
	if s.MD == nil {
		return ctx
	}
	return metadata.NewOutgoingContext(ctx, s.MD)
}

// CallContext is the context for one unary call: the metadata and, when
// the service has one, its timeout.
func (s *Service) CallContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = s.Outgoing(ctx)
	if s.Timeout > 0 {
		return context.WithTimeout(ctx, s.Timeout)
	}
	return context.WithCancel(ctx)
}

func (s *Service) envoyGRPC(eg *corev3.GrpcService_EnvoyGrpc, cm *cluster.Manager, field string) error {
	name := eg.GetClusterName()
	if name == "" {
		return fmt.Errorf("%s.cluster_name: must be set", field)
	}
	var ref *cluster.Ref
	if cm != nil {
		ref = cm.Ref(name)
	}
	c := ref.Load()
	if c == nil {
		return fmt.Errorf("%s.cluster_name: unknown cluster %q", field, name)
	}
	if c.Settings.Protocol != cluster.HTTP2 {
		return fmt.Errorf("%s.cluster_name: cluster %q must speak HTTP/2 for gRPC (typed_extension_protocol_options %s explicit_http_config.http2_protocol_options)",
			field, name, "envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
	}
	authority := eg.GetAuthority()
	if authority == "" {
		authority = name
	}
	creds := insecure.NewCredentials()
	if c.Settings.TLS != nil {
		cfg := c.Settings.TLS.Clone()
		if len(cfg.NextProtos) == 0 {
			cfg.NextProtos = []string{"h2"}
		}
		creds = credentials.NewTLS(cfg)
	}
	dial := DialCluster(ref)
	s.Name = "envoy_grpc " + name
	s.target = "passthrough:///" + name
	s.opts = []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithAuthority(authority),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, "tcp", addr) }),
	}
	return nil
}

// DialCluster returns a dialer that ignores the address it is given and
// connects (plain TCP) to a host picked from the cluster behind ref, with
// the cluster's connect timeout. The cluster is loaded per dial, so CDS
// changes to it apply. It is the one dial path of Legate's own clients.
func DialCluster(ref *cluster.Ref) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		c := ref.Load()
		if c == nil {
			return nil, fmt.Errorf("cluster %q: %w", ref.Name(), ErrNoCluster)
		}
		h := c.Pick(nil)
		if h == nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name, ErrNoHost)
		}
		// Plaintext: gRPC's credentials do TLS on top. The connection
		// counts in the cluster's stats, as Envoy counts its clients'.
		t := dialer.ForCluster(c, h, dialer.Raw)
		t.TLS = nil
		conn, _, err := dialer.Dial(ctx, t)
		return conn, err
	}
}

func (s *Service) googleGRPC(gg *corev3.GrpcService_GoogleGrpc, field string) error {
	target := gg.GetTargetUri()
	if target == "" {
		return fmt.Errorf("%s.target_uri: must be set", field)
	}
	switch {
	case len(gg.GetCallCredentials()) > 0:
		return fmt.Errorf("%s.call_credentials: is not supported", field)
	case len(gg.GetChannelCredentialsPlugin()) > 0 || len(gg.GetCallCredentialsPlugin()) > 0:
		return fmt.Errorf("%s: credential plugins are not supported", field)
	case gg.GetCredentialsFactoryName() != "":
		return fmt.Errorf("%s.credentials_factory_name: is not supported", field)
	}
	creds := insecure.NewCredentials()
	cc := gg.GetChannelCredentials()
	switch {
	case cc == nil:
	case cc.GetSslCredentials() != nil:
		cfg, err := sslCredentials(cc.GetSslCredentials(), field+".channel_credentials.ssl_credentials")
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(cfg)
	default:
		return fmt.Errorf("%s.channel_credentials: only ssl_credentials is supported (unset means plaintext)", field)
	}
	s.Name = "google_grpc " + target
	s.target = target
	s.opts = []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	return nil
}

func sslCredentials(ssl *corev3.GrpcService_GoogleGrpc_SslCredentials, field string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ssl.GetRootCerts() != nil {
		pem, err := tlscontext.ReadDataSource(ssl.GetRootCerts())
		if err != nil {
			return nil, fmt.Errorf("%s.root_certs: %w", field, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.root_certs: no PEM certificates", field)
		}
		cfg.RootCAs = pool
	}
	if ssl.GetCertChain() != nil || ssl.GetPrivateKey() != nil {
		chain, err := tlscontext.ReadDataSource(ssl.GetCertChain())
		if err != nil {
			return nil, fmt.Errorf("%s.cert_chain: %w", field, err)
		}
		key, err := tlscontext.ReadDataSource(ssl.GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("%s.private_key: %w", field, err)
		}
		cert, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

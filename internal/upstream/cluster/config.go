package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	caresv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/tlscontext"
	"github.com/legate-proxy/legate/internal/upstream/lb"
	"github.com/legate-proxy/legate/internal/xds"
)

// DiscoveryType is a cluster's type.
type DiscoveryType uint8

const (
	Static DiscoveryType = iota
	StrictDNS
	LogicalDNS
	// EDS clusters take their hosts from ClusterLoadAssignments.
	EDS
)

func (t DiscoveryType) String() string {
	switch t {
	case Static:
		return "STATIC"
	case StrictDNS:
		return "STRICT_DNS"
	case LogicalDNS:
		return "LOGICAL_DNS"
	case EDS:
		return "EDS"
	}
	return "UNKNOWN"
}

// DNSFamily is dns_lookup_family.
type DNSFamily uint8

const (
	// Auto asks for IPv6 and falls back to IPv4 (Envoy's AUTO).
	Auto DNSFamily = iota
	V4Only
	V6Only
	// V4Preferred asks for IPv4 and falls back to IPv6.
	V4Preferred
	// All returns both families.
	All
)

// Envoy defaults.
const (
	DefaultConnectTimeout           = 5 * time.Second
	DefaultIdleTimeout              = time.Hour
	DefaultPerConnectionBufferLimit = 1 << 20
	DefaultDNSRefreshRate           = 5 * time.Second
	DefaultH2MaxConcurrentStreams   = 2147483647
	DefaultH2InitialStreamWindow    = 268435456
	DefaultH2InitialConnWindow      = 268435456

	// minTTLRefresh floors respect_dns_ttl refreshes so a zero or tiny TTL
	// cannot make Legate hammer its resolver.
	minTTLRefresh = time.Second
)

const (
	httpProtocolOptionsKey  = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	httpProtocolOptionsType = "type.googleapis.com/" + httpProtocolOptionsKey
	upstreamTLSType         = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	caresType               = "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
)

// endpoint is one lb_endpoint, decoded.
type endpoint struct {
	name     string     // socket_address.address as configured
	ip       netip.Addr // valid when name is an IP literal
	port     uint16
	weight   uint32
	hostname string // endpoint.hostname
	// health is the EDS health_status (UNKNOWN for static endpoints).
	health corev3.HealthStatus
	hc     *HealthCheckTarget
}

// config is the decoded, validated form of a Cluster proto.
type config struct {
	name, statName string
	typ            DiscoveryType
	lb             lb.Config
	settings       Settings
	endpoints      []endpoint
	dnsRefresh     time.Duration
	respectTTL     bool
	family         DNSFamily
	resolvers      []netip.AddrPort
	// EDS: the ClusterLoadAssignment name (service_name, else the
	// cluster name) and where it comes from.
	edsService string
	edsSource  *corev3.ConfigSource
}

// fieldErr names the offending field, Envoy-path style.
func fieldErr(field string, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

func positiveDuration(field string, d *durationpb.Duration, def time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fieldErr(field, "%v", err)
	}
	v := d.AsDuration()
	if v <= 0 {
		return 0, fieldErr(field, "must be greater than 0, got %v", v)
	}
	return v, nil
}

// decode turns one Cluster proto into a config. Errors name the field;
// the caller prefixes the cluster. deps serves SDS references of the
// transport socket (their watches register with deps.Release).
func decode(pc *clusterv3.Cluster, deps xds.Deps) (*config, error) {
	cfg := &config{name: pc.GetName(), statName: pc.GetName()}
	if alt := pc.GetAltStatName(); alt != "" {
		cfg.statName = alt
	}
	var err error

	if pc.GetClusterType() != nil {
		return nil, fieldErr("cluster_type", "custom cluster types are not supported")
	}
	switch pc.GetType() {
	case clusterv3.Cluster_STATIC:
		cfg.typ = Static
	case clusterv3.Cluster_STRICT_DNS:
		cfg.typ = StrictDNS
	case clusterv3.Cluster_LOGICAL_DNS:
		cfg.typ = LogicalDNS
	case clusterv3.Cluster_EDS:
		cfg.typ = EDS
		ecc := pc.GetEdsClusterConfig()
		if ecc.GetEdsConfig() == nil {
			return nil, fieldErr("eds_cluster_config.eds_config", "is required for EDS clusters")
		}
		cfg.edsSource = ecc.GetEdsConfig()
		cfg.edsService = ecc.GetServiceName()
		if cfg.edsService == "" {
			cfg.edsService = cfg.name
		}
		if pc.GetLoadAssignment() != nil {
			// Envoy ignores it for EDS clusters; refusing says so.
			return nil, fieldErr("load_assignment", "is not used by EDS clusters (endpoints come from eds_cluster_config)")
		}
	default:
		return nil, fieldErr("type", "%v is not supported", pc.GetType())
	}

	switch pc.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		cfg.lb.Policy = lb.RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		cfg.lb.Policy = lb.LeastRequest
	case clusterv3.Cluster_RANDOM:
		cfg.lb.Policy = lb.Random
	case clusterv3.Cluster_RING_HASH:
		cfg.lb.Policy = lb.RingHash
	case clusterv3.Cluster_MAGLEV:
		cfg.lb.Policy = lb.Maglev
	default:
		return nil, fieldErr("lb_policy", "%v is not supported", pc.GetLbPolicy())
	}
	cfg.lb.ChoiceCount = lb.DefaultChoiceCount
	if lrc := pc.GetLeastRequestLbConfig(); lrc != nil {
		if cc := lrc.GetChoiceCount(); cc != nil {
			if cc.GetValue() < 2 {
				return nil, fieldErr("least_request_lb_config.choice_count", "must be at least 2, got %d", cc.GetValue())
			}
			cfg.lb.ChoiceCount = cc.GetValue()
		}
	}

	if err := decodeHashLB(pc, &cfg.lb); err != nil {
		return nil, err
	}

	s := &cfg.settings
	if s.ConnectTimeout, err = positiveDuration("connect_timeout", pc.GetConnectTimeout(), DefaultConnectTimeout); err != nil {
		return nil, err
	}
	s.PerConnectionBufferLimit = DefaultPerConnectionBufferLimit
	if v := pc.GetPerConnectionBufferLimitBytes(); v != nil {
		s.PerConnectionBufferLimit = v.GetValue()
	}
	s.IdleTimeout = DefaultIdleTimeout
	s.Protocol = HTTP1
	//lint:ignore SA1019 deprecated in v3 but still used by real configs; Legate accepts it as Envoy does
	if h2 := pc.GetHttp2ProtocolOptions(); h2 != nil {
		if err := downstreamOnlyH2("http2_protocol_options", h2); err != nil {
			return nil, err
		}
		s.Protocol = HTTP2
		applyH2(s, h2)
	}
	for key, anyCfg := range pc.GetTypedExtensionProtocolOptions() {
		field := fmt.Sprintf("typed_extension_protocol_options[%q]", key)
		if key != httpProtocolOptionsKey || anyCfg.GetTypeUrl() != httpProtocolOptionsType {
			return nil, fieldErr(field, "%s is not supported", typeName(anyCfg))
		}
		if err := decodeHTTPProtocolOptions(field, anyCfg, s); err != nil {
			return nil, err
		}
	}
	if s.Protocol != HTTP1 && s.H2MaxConcurrentStreams == 0 {
		applyH2(s, &corev3.Http2ProtocolOptions{})
	}

	if ts := pc.GetTransportSocket(); ts != nil {
		tc := ts.GetTypedConfig()
		if tc == nil || tc.GetTypeUrl() != upstreamTLSType {
			return nil, fieldErr("transport_socket", "%s is not supported", typeName(tc))
		}
		up := &tlsv3.UpstreamTlsContext{}
		if err := tc.UnmarshalTo(up); err != nil {
			return nil, fieldErr("transport_socket.typed_config", "%v", err)
		}
		if s.TLS, err = tlscontext.ClientConfig(up, deps); err != nil {
			return nil, fieldErr("transport_socket", "%v", err)
		}
	}

	if bc := pc.GetUpstreamBindConfig(); bc != nil {
		if s.Bind, err = DecodeBindConfig("upstream_bind_config", bc); err != nil {
			return nil, err
		}
	}

	//lint:ignore SA1019 deprecated in v3 but still used by real configs; Legate accepts it as Envoy does
	if cfg.dnsRefresh, err = positiveDuration("dns_refresh_rate", pc.GetDnsRefreshRate(), DefaultDNSRefreshRate); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 deprecated in v3 but still used by real configs; Legate accepts it as Envoy does
	cfg.respectTTL = pc.GetRespectDnsTtl()
	switch pc.GetDnsLookupFamily() {
	case clusterv3.Cluster_AUTO:
		cfg.family = Auto
	case clusterv3.Cluster_V4_ONLY:
		cfg.family = V4Only
	case clusterv3.Cluster_V6_ONLY:
		cfg.family = V6Only
	case clusterv3.Cluster_V4_PREFERRED:
		cfg.family = V4Preferred
	case clusterv3.Cluster_ALL:
		cfg.family = All
	default:
		return nil, fieldErr("dns_lookup_family", "%v is not supported", pc.GetDnsLookupFamily())
	}
	if trc := pc.GetTypedDnsResolverConfig(); trc != nil {
		tc := trc.GetTypedConfig()
		if tc.GetTypeUrl() != caresType {
			return nil, fieldErr("typed_dns_resolver_config", "%s is not supported", typeName(tc))
		}
		cares := &caresv3.CaresDnsResolverConfig{}
		if err := tc.UnmarshalTo(cares); err != nil {
			return nil, fieldErr("typed_dns_resolver_config.typed_config", "%v", err)
		}
		for i, a := range cares.GetResolvers() {
			ap, err := resolverAddr(a)
			if err != nil {
				return nil, fieldErr(fmt.Sprintf("typed_dns_resolver_config.typed_config.resolvers[%d]", i), "%v", err)
			}
			cfg.resolvers = append(cfg.resolvers, ap)
		}
	}
	// The deprecated field only counts when the typed config gave none, as
	// in Envoy where typed_dns_resolver_config takes precedence.
	if len(cfg.resolvers) == 0 {
		//lint:ignore SA1019 deprecated in v3 but still used by real configs; Legate accepts it as Envoy does
		for i, a := range pc.GetDnsResolvers() {
			ap, err := resolverAddr(a)
			if err != nil {
				return nil, fieldErr(fmt.Sprintf("dns_resolvers[%d]", i), "%v", err)
			}
			cfg.resolvers = append(cfg.resolvers, ap)
		}
	}

	if err := decodeEndpoints(pc, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func typeName(a *anypb.Any) string {
	if a == nil {
		return "an empty typed_config"
	}
	return string(a.MessageName())
}

func applyH2(s *Settings, h2 *corev3.Http2ProtocolOptions) {
	s.H2MaxConcurrentStreams = DefaultH2MaxConcurrentStreams
	s.H2InitialStreamWindow = DefaultH2InitialStreamWindow
	s.H2InitialConnWindow = DefaultH2InitialConnWindow
	if v := h2.GetMaxConcurrentStreams(); v != nil {
		s.H2MaxConcurrentStreams = v.GetValue()
	}
	if v := h2.GetInitialStreamWindowSize(); v != nil {
		s.H2InitialStreamWindow = v.GetValue()
	}
	if v := h2.GetInitialConnectionWindowSize(); v != nil {
		s.H2InitialConnWindow = v.GetValue()
	}
}

func decodeHTTPProtocolOptions(field string, a *anypb.Any, s *Settings) error {
	hpo := &httpv3.HttpProtocolOptions{}
	if err := a.UnmarshalTo(hpo); err != nil {
		return fieldErr(field, "%v", err)
	}
	// The upstream codecs take no header-count limit (HTTP/1.1 responses
	// are held to the parser's 100), so a configured one is refused rather
	// than silently ignored. headers_with_underscores_action is accepted:
	// Envoy ignores it on clusters too.
	if hpo.GetCommonHttpProtocolOptions().GetMaxHeadersCount() != nil {
		return fieldErr(field+".common_http_protocol_options.max_headers_count", "is not supported on clusters")
	}
	if c := hpo.GetCommonHttpProtocolOptions(); c != nil && c.GetIdleTimeout() != nil {
		d := c.GetIdleTimeout()
		if err := d.CheckValid(); err != nil {
			return fieldErr(field+".common_http_protocol_options.idle_timeout", "%v", err)
		}
		// 0 disables the timeout, as in Envoy.
		s.IdleTimeout = max(d.AsDuration(), 0)
	}
	switch hpo.GetUpstreamProtocolOptions().(type) {
	case nil:
	case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
		ex := hpo.GetExplicitHttpConfig()
		switch {
		case ex.GetHttp2ProtocolOptions() != nil:
			if err := downstreamOnlyH2(field+".explicit_http_config.http2_protocol_options", ex.GetHttp2ProtocolOptions()); err != nil {
				return err
			}
			s.Protocol = HTTP2
			applyH2(s, ex.GetHttp2ProtocolOptions())
		case ex.GetHttpProtocolOptions() != nil:
			s.Protocol = HTTP1
		default:
			return fieldErr(field+".explicit_http_config", "only http_protocol_options and http2_protocol_options are supported")
		}
	case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
		return fieldErr(field+".use_downstream_protocol_config", "is not supported")
	case *httpv3.HttpProtocolOptions_AutoConfig:
		ac := hpo.GetAutoConfig()
		if ac.GetHttp3ProtocolOptions() != nil || ac.GetAlternateProtocolsCacheOptions() != nil {
			return fieldErr(field+".auto_config", "HTTP/3 (http3_protocol_options, alternate_protocols_cache_options) is not supported")
		}
		s.Protocol = AutoHTTP
		h2 := ac.GetHttp2ProtocolOptions()
		if h2 == nil {
			h2 = &corev3.Http2ProtocolOptions{}
		}
		applyH2(s, h2)
	}
	return nil
}

func resolverAddr(a *corev3.Address) (netip.AddrPort, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, errors.New("only socket_address is supported")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q is not an IP address", sa.GetAddress())
	}
	port := sa.GetPortValue()
	if port == 0 {
		port = 53
	}
	if port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("port_value %d out of range", port)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}

func decodeEndpoints(pc *clusterv3.Cluster, cfg *config) error {
	for i, lle := range pc.GetLoadAssignment().GetEndpoints() {
		if lle.GetPriority() != 0 {
			return fieldErr(fmt.Sprintf("load_assignment.endpoints[%d].priority", i), "only priority 0 is supported")
		}
		for j, le := range lle.GetLbEndpoints() {
			field := fmt.Sprintf("load_assignment.endpoints[%d].lb_endpoints[%d]", i, j)
			ep := le.GetEndpoint()
			if ep == nil {
				return fieldErr(field+".endpoint", "is required")
			}
			sa := ep.GetAddress().GetSocketAddress()
			if sa == nil {
				return fieldErr(field+".endpoint.address", "only socket_address is supported")
			}
			if sa.GetNamedPort() != "" || sa.GetResolverName() != "" {
				return fieldErr(field+".endpoint.address.socket_address", "named_port and resolver_name are not supported")
			}
			if sa.GetPortValue() > 65535 {
				return fieldErr(field+".endpoint.address.socket_address.port_value", "%d out of range", sa.GetPortValue())
			}
			e := endpoint{name: sa.GetAddress(), port: uint16(sa.GetPortValue()), weight: 1, hostname: ep.GetHostname()}
			if e.name == "" {
				return fieldErr(field+".endpoint.address.socket_address.address", "must not be empty")
			}
			if ip, err := netip.ParseAddr(e.name); err == nil {
				e.ip = ip.Unmap()
			} else if cfg.typ == Static {
				return fieldErr(field+".endpoint.address.socket_address.address",
					"%q is not an IP address (STATIC clusters need IP literals; use STRICT_DNS or LOGICAL_DNS for names)", e.name)
			}
			if w := le.GetLoadBalancingWeight(); w != nil {
				if w.GetValue() == 0 {
					return fieldErr(field+".load_balancing_weight", "must be at least 1")
				}
				e.weight = w.GetValue()
			}
			hc, err := decodeHealthCheckConfig(field+".endpoint.health_check_config", ep.GetHealthCheckConfig())
			if err != nil {
				return err
			}
			e.hc = hc
			cfg.endpoints = append(cfg.endpoints, e)
		}
	}
	if cfg.typ == LogicalDNS && len(cfg.endpoints) != 1 {
		return fieldErr("load_assignment", "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint")
	}
	return nil
}

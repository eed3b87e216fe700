package rbac

import (
	"fmt"
	"net/netip"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/legate-proxy/legate/internal/cidr"
	"github.com/legate-proxy/legate/internal/routetable"
)

// compiler compiles one RBAC's rules and notes whether they read dynamic
// data.
type compiler struct {
	opts    Options
	dynamic bool
}

func (c *compiler) permission(p *rbacv3.Permission, path string) (Matcher, error) {
	if c.opts.Permission != nil {
		if m, ok, err := c.opts.Permission(p, path); err != nil || ok {
			return m, err
		}
	}
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, fmt.Errorf("%s.any: must be true", path)
		}
		return always{}, nil
	case *rbacv3.Permission_AndRules:
		ms, err := list(r.AndRules.GetRules(), path+".and_rules.rules", "rule", c.permission)
		return and(ms), err
	case *rbacv3.Permission_OrRules:
		ms, err := list(r.OrRules.GetRules(), path+".or_rules.rules", "rule", c.permission)
		return or(ms), err
	case *rbacv3.Permission_NotRule:
		m, err := c.permission(r.NotRule, path+".not_rule")
		return not{m}, err
	case *rbacv3.Permission_DestinationIp:
		p, err := cidr.Parse(r.DestinationIp, path+".destination_ip")
		return ipMatcher{set: cidr.Set{p}, addr: localAddr}, err
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return nil, fmt.Errorf("%s.destination_port: %d is not a port", path, r.DestinationPort)
		}
		return portRange{start: r.DestinationPort, end: r.DestinationPort + 1}, nil
	case *rbacv3.Permission_DestinationPortRange:
		start, end := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if start < 0 || start > 65536 || end < 0 || end > 65536 || start >= end {
			return nil, fmt.Errorf("%s.destination_port_range: [%d, %d) is not a port range (start < end, both in 0..65536)", path, start, end)
		}
		return portRange{start: uint32(start), end: uint32(end)}, nil
	case *rbacv3.Permission_RequestedServerName:
		sm, err := routetable.CompileStringMatcher(r.RequestedServerName, path+".requested_server_name")
		if err != nil {
			return nil, err
		}
		return serverName{sm}, nil
	case *rbacv3.Permission_Metadata:
		//lint:ignore SA1019 deprecated for sourced_metadata but still in use; accepted as Envoy does
		return c.metadata(r.Metadata, path+".metadata")
	case *rbacv3.Permission_SourcedMetadata:
		return c.sourcedMetadata(r.SourcedMetadata, path+".sourced_metadata")
	case *rbacv3.Permission_Header, *rbacv3.Permission_UrlPath, *rbacv3.Permission_UriTemplate:
		return nil, fmt.Errorf("%s: %s", path, errNeedsHTTP)
	case nil:
		return nil, fmt.Errorf("%s: a rule is required", path)
	}
	return nil, fmt.Errorf("%s: %s is not supported", path, ruleName(p))
}

func (c *compiler) principal(p *rbacv3.Principal, path string) (Matcher, error) {
	if c.opts.Principal != nil {
		if m, ok, err := c.opts.Principal(p, path); err != nil || ok {
			return m, err
		}
	}
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !id.Any {
			return nil, fmt.Errorf("%s.any: must be true", path)
		}
		return always{}, nil
	case *rbacv3.Principal_AndIds:
		ms, err := list(id.AndIds.GetIds(), path+".and_ids.ids", "identifier", c.principal)
		return and(ms), err
	case *rbacv3.Principal_OrIds:
		ms, err := list(id.OrIds.GetIds(), path+".or_ids.ids", "identifier", c.principal)
		return or(ms), err
	case *rbacv3.Principal_NotId:
		m, err := c.principal(id.NotId, path+".not_id")
		return not{m}, err
	case *rbacv3.Principal_SourceIp:
		//lint:ignore SA1019 deprecated for direct_remote_ip and remote_ip but still in use; accepted as Envoy does
		p, err := cidr.Parse(id.SourceIp, path+".source_ip")
		return ipMatcher{set: cidr.Set{p}, addr: sourceAddr}, err
	case *rbacv3.Principal_DirectRemoteIp:
		p, err := cidr.Parse(id.DirectRemoteIp, path+".direct_remote_ip")
		return ipMatcher{set: cidr.Set{p}, addr: directRemoteAddr}, err
	case *rbacv3.Principal_RemoteIp:
		p, err := cidr.Parse(id.RemoteIp, path+".remote_ip")
		return ipMatcher{set: cidr.Set{p}, addr: remoteAddr}, err
	case *rbacv3.Principal_Authenticated_:
		return compileAuthenticated(id.Authenticated, path+".authenticated")
	case *rbacv3.Principal_Metadata:
		//lint:ignore SA1019 deprecated for sourced_metadata but still in use; accepted as Envoy does
		return c.metadata(id.Metadata, path+".metadata")
	case *rbacv3.Principal_SourcedMetadata:
		return c.sourcedMetadata(id.SourcedMetadata, path+".sourced_metadata")
	case *rbacv3.Principal_FilterState:
		c.dynamic = true
		return compileFilterState(id.FilterState, path+".filter_state")
	case *rbacv3.Principal_Header, *rbacv3.Principal_UrlPath:
		return nil, fmt.Errorf("%s: %s", path, errNeedsHTTP)
	case nil:
		return nil, fmt.Errorf("%s: an identifier is required", path)
	}
	return nil, fmt.Errorf("%s: %s is not supported", path, identifierName(p))
}

// list compiles the rules of a set: at least one.
func list[T any](items []T, path, what string, compile func(T, string) (Matcher, error)) ([]Matcher, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: at least one %s is required", path, what)
	}
	ms := make([]Matcher, len(items))
	for i, it := range items {
		m, err := compile(it, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		ms[i] = m
	}
	return ms, nil
}

// metadata compiles a matcher on the dynamic metadata.
func (c *compiler) metadata(m *matcherv3.MetadataMatcher, path string) (Matcher, error) {
	c.dynamic = true
	return compileMetadata(m, path)
}

// sourcedMetadata compiles a metadata matcher with its source: the dynamic
// metadata, or the route's (which only HTTP has).
func (c *compiler) sourcedMetadata(m *rbacv3.SourcedMetadata, path string) (Matcher, error) {
	if m.GetMetadataSource() != rbacv3.MetadataSource_DYNAMIC {
		return nil, fmt.Errorf("%s.metadata_source: %v %s", path, m.GetMetadataSource(), errNeedsHTTP)
	}
	if m.GetMetadataMatcher() == nil {
		return nil, fmt.Errorf("%s.metadata_matcher: is required", path)
	}
	return c.metadata(m.GetMetadataMatcher(), path+".metadata_matcher")
}

// ruleName and identifierName name the oneof field set, for errors.
func ruleName(p *rbacv3.Permission) string {
	if od := p.ProtoReflect().Descriptor().Oneofs().ByName("rule"); od != nil {
		if f := p.ProtoReflect().WhichOneof(od); f != nil {
			return string(f.Name())
		}
	}
	return "this rule"
}

func identifierName(p *rbacv3.Principal) string {
	if od := p.ProtoReflect().Descriptor().Oneofs().ByName("identifier"); od != nil {
		if f := p.ProtoReflect().WhichOneof(od); f != nil {
			return string(f.Name())
		}
	}
	return "this identifier"
}

type always struct{}

func (always) Match(*Input) bool { return true }

type and []Matcher

func (a and) Match(in *Input) bool {
	for _, m := range a {
		if !m.Match(in) {
			return false
		}
	}
	return true
}

type or []Matcher

func (o or) Match(in *Input) bool { return anyMatch(o, in) }

type not struct{ m Matcher }

func (n not) Match(in *Input) bool { return !n.m.Match(in) }

// Which of the input's addresses an IP matcher reads.
type addrKind uint8

const (
	sourceAddr addrKind = iota
	remoteAddr
	directRemoteAddr
	localAddr
)

type ipMatcher struct {
	set  cidr.Set
	addr addrKind
}

func (m ipMatcher) Match(in *Input) bool {
	var a netip.AddrPort
	switch m.addr {
	case sourceAddr:
		a = in.Source
	case remoteAddr:
		a = in.Remote
	case directRemoteAddr:
		a = in.DirectRemote
	default:
		a = in.Local
	}
	return a.IsValid() && m.set.Contains(a.Addr())
}

// portRange matches the local port in [start, end).
type portRange struct{ start, end uint32 }

func (m portRange) Match(in *Input) bool {
	if !in.Local.IsValid() {
		return false
	}
	p := uint32(in.Local.Port())
	return m.start <= p && p < m.end
}

type serverName struct{ m *routetable.StringMatcher }

func (m serverName) Match(in *Input) bool { return m.m.Match(in.RequestedServerName) }

// authenticated matches a TLS connection, and with a principal_name its
// peer certificate: a URI SAN, else a DNS SAN, else the subject (RFC 2253,
// as Envoy prints it) must match.
type authenticated struct{ name *routetable.StringMatcher }

func compileAuthenticated(a *rbacv3.Principal_Authenticated, path string) (Matcher, error) {
	if a.GetPrincipalName() == nil {
		return authenticated{}, nil
	}
	sm, err := routetable.CompileStringMatcher(a.GetPrincipalName(), path+".principal_name")
	if err != nil {
		return nil, err
	}
	return authenticated{name: sm}, nil
}

func (m authenticated) Match(in *Input) bool {
	if in.TLS == nil {
		return false
	}
	if m.name == nil {
		return true
	}
	if len(in.TLS.PeerCertificates) == 0 {
		return m.name.Match("")
	}
	cert := in.TLS.PeerCertificates[0]
	for _, u := range cert.URIs {
		if m.name.Match(u.String()) {
			return true
		}
	}
	for _, d := range cert.DNSNames {
		if m.name.Match(d) {
			return true
		}
	}
	return m.name.Match(cert.Subject.String())
}

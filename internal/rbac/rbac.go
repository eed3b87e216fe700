// Package rbac is Envoy's role-based access control engine
// (envoy.config.rbac.v3.RBAC), shared by the network RBAC filter and the
// HTTP one: policies of permissions (what is done) and principals (who
// does it), compiled at config time into matchers that evaluate without
// allocating.
//
// The engine knows what a connection has (addresses, SNI, the peer
// certificate, dynamic metadata and filter state). Rules that need a
// request (header, url_path, ...) are compiled by the caller through
// Options, so the HTTP filter adds them without changing the engine; at
// L4 they are refused.
package rbac

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// Input is what principals and permissions are matched against.
type Input struct {
	// Source is the connection's remote address (source_ip): the peer,
	// or what a PROXY protocol header restored.
	Source netip.AddrPort
	// Remote is the downstream's address as the stream sees it
	// (remote_ip): Source at L4, after x-forwarded-for processing in HTTP.
	Remote netip.AddrPort
	// DirectRemote is the socket's peer (direct_remote_ip).
	DirectRemote netip.AddrPort
	// Local is the address the connection was accepted on
	// (destination_ip, destination_port).
	Local netip.AddrPort
	// RequestedServerName is the SNI (requested_server_name).
	RequestedServerName string
	// TLS is the connection's TLS state, nil for plaintext (authenticated).
	TLS *tls.ConnectionState
	// Dynamic holds the dynamic metadata and filter state (metadata,
	// filter_state); nil reads as empty.
	Dynamic *streaminfo.Dynamic
	// Request is the HTTP request, nil at L4. The engine itself never
	// reads it; matchers compiled through Options do.
	Request *message.Request
}

// Matcher is one compiled permission or principal.
type Matcher interface {
	Match(in *Input) bool
}

// Options extend what Compile accepts.
type Options struct {
	// Permission and Principal compile the rules that need a request
	// (header, url_path, uri_template, ...); they return ok false for a
	// rule they do not handle either. Nil at L4, where such rules are
	// refused.
	Permission func(p *rbacv3.Permission, path string) (m Matcher, ok bool, err error)
	Principal  func(p *rbacv3.Principal, path string) (m Matcher, ok bool, err error)
}

// Engine is a compiled RBAC: an action and its policies. It is immutable.
type Engine struct {
	action   rbacv3.RBAC_Action
	policies []policy // by name, the order Envoy evaluates them in
	dynamic  bool
}

type policy struct {
	name                    string
	permissions, principals []Matcher
}

// Decision is an engine's verdict.
type Decision struct {
	// Allowed: ALLOW and a policy matched, DENY and none did, or LOG.
	Allowed bool
	// Matched says a policy matched; Policy is the first that did (by
	// name), Envoy's effective policy id.
	Matched bool
	Policy  string
}

// Compile compiles pb; path names it in errors ("rules").
func Compile(pb *rbacv3.RBAC, path string, opts Options) (*Engine, error) {
	if pb.GetAuditLoggingOptions() != nil {
		return nil, fmt.Errorf("%s.audit_logging_options: is not supported", path)
	}
	e := &Engine{action: pb.GetAction()}
	switch e.action {
	case rbacv3.RBAC_ALLOW, rbacv3.RBAC_DENY, rbacv3.RBAC_LOG:
	default:
		return nil, fmt.Errorf("%s.action: %v is not supported", path, e.action)
	}
	names := make([]string, 0, len(pb.GetPolicies()))
	for name := range pb.GetPolicies() {
		names = append(names, name)
	}
	sort.Strings(names)
	c := compiler{opts: opts}
	for _, name := range names {
		pp := pb.GetPolicies()[name]
		at := fmt.Sprintf("%s.policies[%q]", path, name)
		if pp.GetCondition() != nil || pp.GetCheckedCondition() != nil || pp.GetCelConfig() != nil {
			return nil, fmt.Errorf("%s.condition: CEL expressions are not supported; express the policy with permissions and principals", at)
		}
		if len(pp.GetPermissions()) == 0 {
			return nil, fmt.Errorf("%s.permissions: at least one permission is required (use any: true to match everything)", at)
		}
		if len(pp.GetPrincipals()) == 0 {
			return nil, fmt.Errorf("%s.principals: at least one principal is required (use any: true to match everyone)", at)
		}
		p := policy{name: name}
		for i, perm := range pp.GetPermissions() {
			m, err := c.permission(perm, fmt.Sprintf("%s.permissions[%d]", at, i))
			if err != nil {
				return nil, err
			}
			p.permissions = append(p.permissions, m)
		}
		for i, prin := range pp.GetPrincipals() {
			m, err := c.principal(prin, fmt.Sprintf("%s.principals[%d]", at, i))
			if err != nil {
				return nil, err
			}
			p.principals = append(p.principals, m)
		}
		e.policies = append(e.policies, p)
	}
	e.dynamic = c.dynamic
	return e, nil
}

// Action is the engine's action.
func (e *Engine) Action() rbacv3.RBAC_Action { return e.action }

// UsesDynamic reports whether a policy reads dynamic metadata or filter
// state, which filters may set after the connection starts; an engine that
// does not decides the same at any time for a given connection.
func (e *Engine) UsesDynamic() bool { return e.dynamic }

// Evaluate decides for in. A policy matches when one of its permissions
// and one of its principals do.
func (e *Engine) Evaluate(in *Input) Decision {
	var d Decision
	for i := range e.policies {
		p := &e.policies[i]
		if anyMatch(p.permissions, in) && anyMatch(p.principals, in) {
			d.Matched, d.Policy = true, p.name
			break
		}
	}
	switch e.action {
	case rbacv3.RBAC_ALLOW:
		d.Allowed = d.Matched
	case rbacv3.RBAC_DENY:
		d.Allowed = !d.Matched
	default: // LOG
		d.Allowed = true
	}
	return d
}

func anyMatch(ms []Matcher, in *Input) bool {
	for _, m := range ms {
		if m.Match(in) {
			return true
		}
	}
	return false
}

// errNeedsHTTP is the refusal of a request rule where there is no request.
var errNeedsHTTP = errors.New("matches HTTP requests and is only available in the HTTP RBAC filter")

// Package proxy_protocol is Envoy's PROXY protocol listener filter
// (type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol).
// It reads a PROXY protocol header, version 1 (text) or 2 (binary, with
// TLVs), from the start of the connection, consumes it, and makes the
// addresses it carries the connection's: the source is what the HTTP
// connection manager appends to x-forwarded-for, what access logs show as
// the downstream remote address and what RBAC and the filter chain match
// see as the remote address (the socket's peer stays the direct remote
// address). TLVs named in rules become dynamic metadata. Without a header
// the connection is closed unless allow_requests_without_proxy_protocol.
//
// Stats are Envoy's under proxy_proto.[<stat_prefix>.]: not_found_allowed,
// not_found_disallowed, versions.v1.found, versions.v1.disallowed,
// versions.v1.error, and the same for v2.
package proxy_protocol

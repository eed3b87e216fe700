// Package http_inspector is Envoy's HTTP inspector listener filter
// (type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector).
// On a connection that is not TLS it reads the first bytes without
// consuming them and sets the application protocol the filter chain match
// sees: "h2c" for the HTTP/2 connection preface, "http/1.1" or "http/1.0"
// for an HTTP/1 request line; anything else is left alone. Stats are
// Envoy's under http_inspector.: http10_found, http11_found, http2_found,
// http_not_found, read_error.
package http_inspector

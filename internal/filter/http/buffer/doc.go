// Package buffer is Envoy's envoy.filters.http.buffer, config type
// type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer: it
// holds a request until its whole body has arrived (up to
// max_request_bytes; past it the request is answered 413 Payload Too Large
// and never reaches the upstream), then passes it on with a content-length.
//
// A route, virtual host or weighted cluster overrides it with a
// typed_per_filter_config entry of type
// type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
// (disabled: true, or its own buffer), decoded when the route table is
// compiled.
package buffer

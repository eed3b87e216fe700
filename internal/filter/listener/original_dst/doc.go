// Package original_dst is Envoy's original destination listener filter
// (type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst).
// For a connection redirected to the listener by iptables (REDIRECT, or
// DNAT), it reads the destination the client asked for (SO_ORIGINAL_DST)
// and makes it the connection's local address: the filter chain match
// (destination_port, prefix_ranges) and access logs see it. A connection
// that was not redirected keeps its address. Linux only; elsewhere the
// filter does nothing.
package original_dst

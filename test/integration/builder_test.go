package integration

import (
	"fmt"
	"strings"

	"github.com/legate-proxy/legate/internal/testutil"
)

// Config builders: fragments are written at indent 0 and indented here, so
// tests read as plain Envoy YAML.

// indent prefixes every line of s (but empty ones) with n spaces.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}

// listenerYAML is a listener named name on {{port "<name>"}} whose HCM has
// the given body (stat_prefix defaults to name; the router filter is
// appended); tlsCtx, when set, is a DownstreamTlsContext body.
func listenerYAML(name, hcm, tlsCtx string) string {
	if !strings.Contains(hcm, "stat_prefix:") {
		hcm = "stat_prefix: " + name + "\n" + hcm
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n  address:\n    socket_address: {address: 127.0.0.1, port_value: {{port %q}}}\n", name, name)
	b.WriteString("  filter_chains:\n  - filters:\n    - name: envoy.filters.network.http_connection_manager\n      typed_config:\n")
	b.WriteString("        \"@type\": " + hcmType + "\n")
	b.WriteString(indent(hcm, 8) + "\n")
	b.WriteString("        http_filters:\n        - name: envoy.filters.http.router\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n")
	if tlsCtx != "" {
		b.WriteString("    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n")
		b.WriteString("        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n")
		b.WriteString(indent(tlsCtx, 8) + "\n")
	}
	return b.String()
}

// dnsCluster is a STRICT_DNS cluster resolving name:port through d.
func dnsCluster(name string, d *DNSServer, extra, host string, port int) string {
	e := "type: STRICT_DNS\ndns_lookup_family: V4_ONLY\n" + d.resolverYAML()
	if extra != "" {
		e += "\n" + extra
	}
	return testutil.StaticClusterYAML(name, e, fmt.Sprintf("%s:%d", host, port))
}

// bootstrapYAML assembles listeners and clusters (admin is added by
// renderConfig).
func bootstrapYAML(listeners, clusters []string) string {
	var b strings.Builder
	b.WriteString("static_resources:\n  listeners:\n")
	for _, l := range listeners {
		b.WriteString(indent(l, 2) + "\n")
	}
	if len(clusters) > 0 {
		b.WriteString("  clusters:\n")
		for _, c := range clusters {
			b.WriteString(indent(c, 2) + "\n")
		}
	}
	return b.String()
}

// routeAll is a route_config sending everything to cluster.
func routeAll(cluster string) string {
	return `route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {prefix: "/"}
      route: {cluster: ` + cluster + `}`
}

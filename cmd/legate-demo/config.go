package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"sigs.k8s.io/yaml"
)

// ports are the addresses the demo needs to agree on with Legate's config.
// A zero field means "as the config says".
type ports struct {
	HTTP, HTTPS, Admin, DNS, Service, Zipkin int
}

// demoConfig is what the demo learned from (and changed in) a bootstrap.
type demoConfig struct {
	// YAML is the config to hand to Legate: the original bytes when nothing
	// was overridden, so that Legate's error positions match the file.
	YAML []byte
	endpoints
}

// endpoints are where the demo finds Legate and where it must put its own
// DNS server and replicas.
type endpoints struct {
	HTTPAddr  string // host:port of the first plaintext listener
	HTTPSAddr string // host:port of the first TLS listener, "" if none
	AdminAddr string // host:port of admin, "" if none
	DNSPort   int    // port of the loopback resolver the clusters use, 0 if none
	// Service is the upstream port of the service1/service2 endpoints.
	Service int
	// ZipkinAddr is host:port of the loopback Zipkin collector the
	// connection managers report spans to, which the demo then runs; ""
	// when they do not trace to a loopback collector_cluster.
	ZipkinAddr string
	// ZipkinPath is that collector's collector_endpoint.
	ZipkinPath string
	// StdoutAccessLog is true when a connection manager logs to stdout.
	StdoutAccessLog bool
}

// stdoutAccessLogType is the typed_config of Envoy's stdout access logger.
const stdoutAccessLogType = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"

// demoClusters are the clusters whose endpoints the demo's replicas serve.
var demoClusters = map[string]bool{"service1": true, "service2": true}

// prepareConfig reads an Envoy bootstrap, applies the non-zero overrides and
// reports where everything ended up. It only touches the fields the demo
// owns (listener, admin, resolver, service and Zipkin collector ports);
// the rest of the config passes through unchanged.
func prepareConfig(src []byte, over ports) (*demoConfig, error) {
	var root map[string]any
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	changed := false
	set := func(sa map[string]any, port int) {
		if port != 0 && num(sa["port_value"]) != port {
			sa["port_value"] = port
			changed = true
		}
	}

	dc := &demoConfig{}
	// The first Zipkin collector_cluster any connection manager names.
	var collector, collectorPath string
	for i, l := range list(get(root, "static_resources", "listeners")) {
		sa := obj(get(l, "address", "socket_address"))
		if sa == nil {
			return nil, fmt.Errorf("static_resources.listeners[%d]: no address.socket_address", i)
		}
		tlsListener := false
		for _, fc := range list(get(l, "filter_chains")) {
			if get(fc, "transport_socket") != nil {
				tlsListener = true
			}
			for _, f := range list(get(fc, "filters")) {
				hcm := get(f, "typed_config")
				if c := str(get(hcm, "tracing", "provider", "typed_config", "collector_cluster")); c != "" && collector == "" {
					collector = c
					collectorPath = str(get(hcm, "tracing", "provider", "typed_config", "collector_endpoint"))
				}
				for _, al := range list(get(hcm, "access_log")) {
					if str(get(al, "typed_config", "@type")) == stdoutAccessLogType {
						dc.StdoutAccessLog = true
					}
				}
			}
		}
		switch {
		case !tlsListener && dc.HTTPAddr == "":
			set(sa, over.HTTP)
			dc.HTTPAddr = dialAddr(sa)
		case tlsListener && dc.HTTPSAddr == "":
			set(sa, over.HTTPS)
			dc.HTTPSAddr = dialAddr(sa)
		}
	}
	if dc.HTTPAddr == "" {
		return nil, errors.New("config has no plaintext listener for the demo to send requests to")
	}
	if sa := obj(get(root, "admin", "address", "socket_address")); sa != nil {
		set(sa, over.Admin)
		dc.AdminAddr = dialAddr(sa)
	}

	for _, c := range list(get(root, "static_resources", "clusters")) {
		name, _ := get(c, "name").(string)
		if !demoClusters[name] {
			continue
		}
		for _, r := range list(get(c, "typed_dns_resolver_config", "typed_config", "resolvers")) {
			sa := obj(get(r, "socket_address"))
			if sa == nil {
				continue
			}
			if ip := net.ParseIP(str(sa["address"])); ip == nil || !ip.IsLoopback() {
				continue
			}
			set(sa, over.DNS)
			dc.DNSPort = num(sa["port_value"])
		}
		for _, e := range list(get(c, "load_assignment", "endpoints")) {
			for _, lbe := range list(get(e, "lb_endpoints")) {
				sa := obj(get(lbe, "endpoint", "address", "socket_address"))
				if sa == nil {
					continue
				}
				set(sa, over.Service)
				dc.Service = num(sa["port_value"])
			}
		}
	}
	if dc.Service == 0 {
		return nil, errors.New("config has no endpoints for clusters service1 and service2")
	}

	// A collector on loopback is the demo's to run; any other address is a
	// real Zipkin the user runs, left alone.
	for _, c := range list(get(root, "static_resources", "clusters")) {
		if collector == "" || str(get(c, "name")) != collector {
			continue
		}
		for _, e := range list(get(c, "load_assignment", "endpoints")) {
			for _, lbe := range list(get(e, "lb_endpoints")) {
				sa := obj(get(lbe, "endpoint", "address", "socket_address"))
				if ip := net.ParseIP(str(sa["address"])); sa == nil || ip == nil || !ip.IsLoopback() || dc.ZipkinAddr != "" {
					continue
				}
				set(sa, over.Zipkin)
				dc.ZipkinAddr = dialAddr(sa)
				dc.ZipkinPath = collectorPath
			}
		}
	}

	dc.YAML = src
	if changed {
		out, err := yaml.Marshal(root)
		if err != nil {
			return nil, fmt.Errorf("write config: %w", err)
		}
		dc.YAML = append([]byte("# Generated by legate-demo from its config with ports overridden.\n"), out...)
	}
	return dc, nil
}

// dialAddr turns a listening socket_address into one a client can dial.
func dialAddr(sa map[string]any) string {
	host := str(sa["address"])
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(num(sa["port_value"])))
}

func get(v any, path ...string) any {
	for _, k := range path {
		m := obj(v)
		if m == nil {
			return nil
		}
		v = m[k]
	}
	return v
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func list(v any) []any         { l, _ := v.([]any); return l }
func str(v any) string         { s, _ := v.(string); return s }

// num reads a port, which YAML-via-JSON decodes as float64 (or a string when
// quoted, which protojson also accepts).
func num(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case int:
		return n
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

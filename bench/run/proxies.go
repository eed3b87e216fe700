package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// proxy is one contender: how to configure and start it with one worker,
// listening on 127.0.0.1:listen and forwarding to 127.0.0.1:upstream over
// keep-alive connections.
type proxy struct {
	name    string
	bin     string // path or name on $PATH
	install string // hint when bin is missing
	// command writes any config into dir and returns the argv to run.
	command func(bin, dir string, listen, upstream int) ([]string, error)
	// h2cCommand is command for a listener that speaks HTTP/2 with prior
	// knowledge (cleartext) to clients.
	h2cCommand func(bin, dir string, listen, upstream int) ([]string, error)
}

func proxies(o options) []proxy {
	return []proxy{
		// Legate's codec_type AUTO takes h2c prior knowledge on the same listener.
		{name: "legate", bin: o.legate, install: "make build", command: legateCommand, h2cCommand: legateCommand},
		{name: "nginx", bin: o.nginx, install: "apt-get install nginx-light (or nginx)", command: nginxProxyCommand,
			h2cCommand: func(bin, dir string, listen, upstream int) ([]string, error) {
				return nginxProxy(bin, dir, listen, upstream, " http2")
			}},
		{name: "haproxy", bin: o.haproxy, install: "apt-get install haproxy", command: haproxyCommand,
			h2cCommand: func(bin, dir string, listen, upstream int) ([]string, error) {
				return haproxy(bin, dir, listen, upstream, " proto h2")
			}},
	}
}

// legateCommand: an Envoy bootstrap with one listener and one STATIC
// cluster, everything else at Envoy's defaults (x-request-id generation,
// x-forwarded-proto and x-envoy-* headers included), one worker.
func legateCommand(bin, dir string, listen, upstream int) ([]string, error) {
	cfg := fmt.Sprintf(`static_resources:
  listeners:
  - name: bench
    address:
      socket_address: {address: 127.0.0.1, port_value: %d}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: upstream}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: 127.0.0.1, port_value: %d}
`, listen, upstream)
	path := filepath.Join(dir, "legate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return []string{bin, "-c", path, "--concurrency", "1", "-l", "warning"}, nil
}

// maxConns is the connection limit given to nginx (worker_connections,
// which it preallocates) and haproxy (maxconn): enough for the throughput
// runs by default, raised by the idle scenario.
var maxConns = 4096

// nginxBase is the part of every nginx config that keeps nginx inside dir:
// Debian's build points pid, logs and temp paths at system directories.
func nginxBase(dir string) string {
	return fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections %[2]d; }
worker_rlimit_nofile %[3]d;
`, dir, maxConns, 2*maxConns+64)
}

func nginxHTTPBase(dir string) string {
	return fmt.Sprintf(`    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    # nginx closes a keep-alive connection after 1000 requests by default;
    # the other proxies do not, so neither does this one.
    keepalive_requests 10000000;
    keepalive_timeout 300s;
`, dir)
}

// nginxProxyCommand: one worker, an upstream block with a keep-alive pool.
func nginxProxyCommand(bin, dir string, listen, upstream int) ([]string, error) {
	return nginxProxy(bin, dir, listen, upstream, "")
}

// nginxProxy is nginxProxyCommand with extra listen parameters.
func nginxProxy(bin, dir string, listen, upstream int, listenParams string) ([]string, error) {
	cfg := nginxBase(dir) + fmt.Sprintf(`http {
%s
    upstream backend {
        server 127.0.0.1:%d;
        keepalive 64;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:%d%s;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, nginxHTTPBase(dir), upstream, listen, listenParams)
	return nginxArgv(bin, dir, "nginx-proxy.conf", cfg)
}

// nginxUpstreamCommand: the shared upstream, answering "ok" from memory.
func nginxUpstreamCommand(bin, dir string, listen int) ([]string, error) {
	cfg := nginxBase(dir) + fmt.Sprintf(`http {
%s
    server {
        listen 127.0.0.1:%d;
        location / {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
`, nginxHTTPBase(dir), listen)
	return nginxArgv(bin, dir, "nginx-upstream.conf", cfg)
}

func nginxArgv(bin, dir, name, cfg string) ([]string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	// -e: the error log before the config is read (Debian's default path may
	// not be writable).
	return []string{bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log")}, nil
}

// haproxyCommand: one thread, connection reuse to the server, in the
// foreground (-db).
func haproxyCommand(bin, dir string, listen, upstream int) ([]string, error) {
	return haproxy(bin, dir, listen, upstream, "")
}

// haproxy is haproxyCommand with extra bind parameters.
func haproxy(bin, dir string, listen, upstream int, bindParams string) ([]string, error) {
	cfg := fmt.Sprintf(`global
    nbthread 1
    maxconn %d

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s

frontend bench
    bind 127.0.0.1:%d%s
    default_backend upstream

backend upstream
    server up 127.0.0.1:%d
`, maxConns, listen, bindParams, upstream)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return []string{bin, "-f", path, "-db"}, nil
}

// selectedProxies are the proxies --proxies names, in its order.
func selectedProxies(o options) ([]proxy, error) {
	byName := map[string]proxy{}
	for _, p := range proxies(o) {
		byName[p.name] = p
	}
	var out []proxy
	for _, name := range strings.Split(o.only, ",") {
		name = strings.TrimSpace(name)
		p, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("unknown proxy %q (have legate, nginx, haproxy)", name)
		}
		out = append(out, p)
	}
	return out, nil
}

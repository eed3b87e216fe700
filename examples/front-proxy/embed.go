// Package frontproxy holds the Envoy-format configs of Legate's front-proxy
// case study, embedded so that cmd/legate-demo runs without the source tree.
package frontproxy

import _ "embed"

// DemoConfig is legate-demo.yaml: listeners on 127.0.0.1:8080 (HTTP) and
// :8443 (HTTPS), admin on 127.0.0.1:9901, and STRICT_DNS clusters service1 and
// service2 resolved through the DNS server at 127.0.0.1:15353 that
// cmd/legate-demo runs. Both listeners trace to the Zipkin collector
// cmd/legate-demo runs on 127.0.0.1:9411 and access-log to stdout.
//
//go:embed legate-demo.yaml
var DemoConfig []byte

// Config is legate.yaml: the same proxy, resolving service1 and service2
// through the system resolver (for container deployments).
//
//go:embed legate.yaml
var Config []byte

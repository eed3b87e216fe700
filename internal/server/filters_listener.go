package server

// The listener filters; they register by type URL in init.
import (
	_ "github.com/legate-proxy/legate/internal/filter/listener/http_inspector"
	_ "github.com/legate-proxy/legate/internal/filter/listener/original_dst"
	_ "github.com/legate-proxy/legate/internal/filter/listener/proxy_protocol"
	_ "github.com/legate-proxy/legate/internal/filter/listener/tls_inspector"
)

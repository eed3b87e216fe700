package server

// The non-terminal network filters; they register by type URL in init.
import (
	_ "github.com/legate-proxy/legate/internal/filter/network/connection_limit"
	_ "github.com/legate-proxy/legate/internal/filter/network/local_ratelimit"
	_ "github.com/legate-proxy/legate/internal/filter/network/rbac"
	_ "github.com/legate-proxy/legate/internal/filter/network/sni_cluster"
)

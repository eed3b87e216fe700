package server

// The non-terminal HTTP filters; they register by type URL (and their
// per-route config types) in init.
import (
	_ "github.com/legate-proxy/legate/internal/filter/http/buffer"
)

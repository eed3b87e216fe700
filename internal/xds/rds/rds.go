// Package rds provides route configurations discovered over RDS to HTTP
// connection managers: one provider per (route_config_name, config source),
// shared by every connection manager that names it, publishing compiled
// route tables through a router.TableRef.
package rds

// Manager owns the RDS providers. STUB: being implemented.
type Manager struct{}

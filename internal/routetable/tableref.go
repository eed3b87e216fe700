package routetable

import "sync/atomic"

// TableRef is where a connection manager finds its route table: fixed for
// an inline route_config, replaced by each accepted RDS update. Requests
// load it once, so a request sees one table from start to end.
type TableRef struct {
	p atomic.Pointer[Table]
}

// StaticTable returns a TableRef that always holds t.
func StaticTable(t *Table) *TableRef {
	r := &TableRef{}
	r.p.Store(t)
	return r
}

// Load returns the current table; nil until the first RDS update (a
// listener that went live on initial_fetch_timeout without one), which
// callers treat as a table with no routes (404, NR).
func (r *TableRef) Load() *Table { return r.p.Load() }

// Store publishes t.
func (r *TableRef) Store(t *Table) { r.p.Store(t) }

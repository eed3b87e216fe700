package routetable

import "testing"

func TestRouteDecorator(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/named"}
    decorator: {operation: "checkout"}
    route: {cluster: a}
  - match: {prefix: "/quiet"}
    decorator: {operation: "quiet-op", propagate: false}
    route: {cluster: a}
  - match: {prefix: "/"}
    route: {cluster: a}
`)
	tests := []struct {
		path      string
		op        string
		propagate bool
		none      bool
	}{
		{path: "/named", op: "checkout", propagate: true},
		{path: "/quiet", op: "quiet-op", propagate: false},
		{path: "/other", none: true},
	}
	for _, tt := range tests {
		r, _ := tbl.Match(req("x", tt.path))
		if r == nil {
			t.Fatalf("%s: no route", tt.path)
		}
		d := r.Decorator
		if tt.none {
			if d != nil {
				t.Errorf("%s: decorator %+v, want none", tt.path, d)
			}
			continue
		}
		if d == nil || d.Operation != tt.op || d.Propagate != tt.propagate {
			t.Errorf("%s: decorator %+v, want %q propagate=%v", tt.path, d, tt.op, tt.propagate)
		}
	}
}

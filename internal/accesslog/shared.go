package accesslog

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/runtime"
)

// Envoy uses access log filters and substitution format strings outside
// access logs too (the HCM's local_reply_config); these are the same
// compilers, exported.

// Filter is a compiled AccessLogFilter.
type Filter interface {
	Match(ctx *formatter.Context) bool
}

type exportedFilter struct{ f filter }

func (e exportedFilter) Match(ctx *formatter.Context) bool { return e.f.match(ctx) }

// CompileFilter compiles an AccessLogFilter; path names it in errors.
func CompileFilter(pb *accesslogv3.AccessLogFilter, rt *runtime.Snapshot, path string) (Filter, error) {
	f, err := compileFilter(pb, rt, path)
	if err != nil {
		return nil, err
	}
	return exportedFilter{f}, nil
}

// Format is a compiled SubstitutionFormatString.
type Format struct {
	f lineFormat
	// ContentType is the format's content_type, or Envoy's default for its
	// kind: "application/json" for json_format, else "text/plain".
	ContentType string
}

// Append renders the format for ctx onto dst.
func (f *Format) Append(dst []byte, ctx *formatter.Context) []byte { return f.f.appendLine(dst, ctx) }

// CompileFormat compiles a SubstitutionFormatString (which must not be nil).
func CompileFormat(sf *corev3.SubstitutionFormatString, path string) (*Format, error) {
	lf, err := compileSubstitution(sf, path)
	if err != nil {
		return nil, err
	}
	ct := sf.GetContentType()
	if ct == "" {
		ct = "text/plain"
		if sf.GetJsonFormat() != nil {
			ct = "application/json"
		}
	}
	return &Format{f: lf, ContentType: ct}, nil
}

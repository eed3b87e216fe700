package hcm

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/tlscontext"
)

// localReplyConfig is a compiled local_reply_config: mappers tried in
// order (the first whose filter matches rewrites the reply), then the body
// format.
type localReplyConfig struct {
	mappers []replyMapper
	format  *accesslog.Format // nil: the body goes out as it is
}

type replyMapper struct {
	filter  accesslog.Filter
	status  int // 0 keeps the reply's
	body    string
	hasBody bool
	format  *accesslog.Format // body_format_override
}

func compileLocalReply(pb *hcmv3.LocalReplyConfig, rt *runtime.Snapshot) (*localReplyConfig, error) {
	if pb == nil {
		return nil, nil
	}
	lr := &localReplyConfig{}
	for i, m := range pb.GetMappers() {
		path := fmt.Sprintf(".mappers[%d]", i)
		if m.GetFilter() == nil {
			return nil, fmt.Errorf("%s.filter: is required", path)
		}
		f, err := accesslog.CompileFilter(m.GetFilter(), rt, path[1:]+".filter")
		if err != nil {
			return nil, fmt.Errorf(".%w", err)
		}
		rm := replyMapper{filter: f}
		if sc := m.GetStatusCode(); sc != nil {
			if sc.GetValue() < 200 || sc.GetValue() >= 600 {
				return nil, fmt.Errorf("%s.status_code: %d is not in [200, 600)", path, sc.GetValue())
			}
			rm.status = int(sc.GetValue())
		}
		if b := m.GetBody(); b != nil {
			body, err := tlscontext.ReadDataSource(b)
			if err != nil {
				return nil, fmt.Errorf("%s.body: %w", path, err)
			}
			rm.body, rm.hasBody = string(body), true
		}
		if bf := m.GetBodyFormatOverride(); bf != nil {
			if rm.format, err = accesslog.CompileFormat(bf, path[1:]+".body_format_override"); err != nil {
				return nil, fmt.Errorf(".%w", err)
			}
		}
		lr.mappers = append(lr.mappers, rm)
	}
	if bf := pb.GetBodyFormat(); bf != nil {
		var err error
		if lr.format, err = accesslog.CompileFormat(bf, "body_format"); err != nil {
			return nil, fmt.Errorf(".%w", err)
		}
	}
	return lr, nil
}

// rewrite applies the mappers and the body format to a reply, as Envoy's
// local reply does before the reply is encoded. contentType is "" unless a
// body format set it.
func (lr *localReplyConfig) rewrite(fs *httpfilter.Stream, r *httpfilter.LocalReply) (contentType string) {
	format := lr.format
	fs.Info.ResponseCode = r.Status
	ctx := formatter.Context{Request: fs.Request, ResponseHeaders: r.Headers, Info: fs.Info}
	for i := range lr.mappers {
		m := &lr.mappers[i]
		if !m.filter.Match(&ctx) {
			continue
		}
		if m.status != 0 {
			r.Status = m.status
		}
		if m.hasBody {
			r.Body = m.body
		}
		if m.format != nil {
			format = m.format
		}
		break
	}
	if format == nil {
		return ""
	}
	fs.Info.ResponseCode = r.Status
	ctx.LocalReplyBody = r.Body
	r.Body = string(format.Append(nil, &ctx))
	return format.ContentType
}

// writeLocalReply encodes a local reply: after local_reply_config, a gRPC
// request gets a trailers-only response (200, grpc-status, grpc-message),
// anything else the status with a text/plain body (none for HEAD),
// content-length, date and server.
func (cfg *Config) writeLocalReply(fs *httpfilter.Stream, r httpfilter.LocalReply) {
	fs.Info.ResponseCodeDetails = r.Details
	if fs.Response.HeaderWritten() {
		// Too late for a reply: the response has started. The codec
		// resets the stream (HTTP/2) or closes the connection (HTTP/1).
		cfg.Stats.RqResetAfterResponseStarted.Inc()
		return
	}
	contentType := ""
	if cfg.localReply != nil {
		contentType = cfg.localReply.rewrite(fs, &r)
	}
	h := r.Headers
	if isGRPC(fs.Request) {
		code := r.GrpcStatus
		if !r.HasGrpcStatus {
			code = httpToGRPCStatus(r.Status)
		}
		h.Set("content-type", "application/grpc")
		h.Set("grpc-status", strconv.FormatUint(uint64(code), 10))
		if r.Body != "" {
			h.Set("grpc-message", grpcMessage(r.Body))
		}
		fs.Response.WriteHeader(http.StatusOK, h, 0)
		return
	}
	if r.Body != "" {
		if contentType == "" {
			contentType = "text/plain"
		}
		h.Set("content-type", contentType)
	}
	if err := fs.Response.WriteHeader(r.Status, h, int64(len(r.Body))); err != nil {
		return
	}
	if r.Body != "" && fs.Request.Method != http.MethodHead {
		io.WriteString(fs.Response, r.Body)
	}
}

// isGRPC is Envoy's test for a gRPC request: its content-type is
// application/grpc, alone or with a +suffix or parameters.
func isGRPC(req *message.Request) bool {
	ct, ok := req.Header.Get("content-type")
	if !ok || !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	rest := ct[len("application/grpc"):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// httpToGRPCStatus is gRPC's HTTP-to-gRPC status mapping, which Envoy uses
// for local replies to gRPC requests.
func httpToGRPCStatus(status int) uint32 {
	switch status {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// grpcMessage percent-encodes a grpc-message value: bytes outside printable
// ASCII, and '%', as the gRPC protocol requires.
func grpcMessage(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

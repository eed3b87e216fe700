// Package formatter implements Envoy's command-operator format strings
// ("%REQ(x-request-id)%", "%START_TIME(%s.%3f)%", ...), the one substitution
// language Envoy uses for header values, access logs and local replies.
//
// A format string is parsed once, at config time, into a list of parts;
// formatting a request walks that list and appends into a caller-provided
// []byte, so the hot path does no parsing and, for most operators, no
// allocation.
package formatter

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// Context is what a format string is evaluated against. Any field may be
// nil; operators whose source is missing render as missing. A TCP
// connection's access log has no Request, response headers or trailers:
// %REQ%, %RESP% and %TRAILER% then render as missing.
type Context struct {
	Request          *message.Request
	ResponseHeaders  message.Headers
	ResponseTrailers message.Headers
	Info             *streaminfo.StreamInfo
	// LocalReplyBody is %LOCAL_REPLY_BODY%: set only while a local reply's
	// body is formatted (local_reply_config).
	LocalReplyBody string
}

// emptyContext stands in for a nil *Context.
var emptyContext Context

// Options change how a format string renders.
type Options struct {
	// OmitEmptyValues renders a missing value as nothing instead of "-".
	// Envoy formats header values this way (an empty result then drops the
	// header unless keep_empty_value); access logs keep the "-".
	OmitEmptyValues bool
}

type opKind uint8

const (
	opLiteral opKind = iota
	opStatic         // value fixed at compile time (HOSTNAME, ENVIRONMENT)
	opReq
	opResp
	opTrailer
	opDownstreamRemoteAddress
	opDownstreamRemoteAddressWithoutPort
	opDownstreamRemotePort
	opDownstreamDirectRemoteAddress
	opDownstreamDirectRemoteAddressWithoutPort
	opDownstreamDirectRemotePort
	opDownstreamLocalAddress
	opDownstreamLocalAddressWithoutPort
	opDownstreamLocalPort
	opUpstreamRemoteAddress
	opUpstreamHost
	opUpstreamCluster
	opUpstreamLocalAddress
	opUpstreamTransportFailureReason
	opStartTime
	opProtocol
	opResponseCode
	opResponseFlags
	opResponseCodeDetails
	opRouteName
	opRequestedServerName
	opConnectionID
	opBytesReceived
	opBytesSent
	opDuration
	opRequestDuration
	opResponseDuration
	opUpstreamRequestAttemptCount
	opDynamicMetadata
	opFilterState
	opLocalReplyBody
)

// simpleOps are the operators that take no argument.
var simpleOps = map[string]opKind{
	"DOWNSTREAM_REMOTE_ADDRESS":                     opDownstreamRemoteAddress,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":        opDownstreamRemoteAddressWithoutPort,
	"DOWNSTREAM_REMOTE_PORT":                        opDownstreamRemotePort,
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS":              opDownstreamDirectRemoteAddress,
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": opDownstreamDirectRemoteAddressWithoutPort,
	"DOWNSTREAM_DIRECT_REMOTE_PORT":                 opDownstreamDirectRemotePort,
	"DOWNSTREAM_LOCAL_ADDRESS":                      opDownstreamLocalAddress,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":         opDownstreamLocalAddressWithoutPort,
	"DOWNSTREAM_LOCAL_PORT":                         opDownstreamLocalPort,
	"UPSTREAM_REMOTE_ADDRESS":                       opUpstreamRemoteAddress,
	"UPSTREAM_HOST":                                 opUpstreamHost,
	"UPSTREAM_CLUSTER":                              opUpstreamCluster,
	"UPSTREAM_LOCAL_ADDRESS":                        opUpstreamLocalAddress,
	"UPSTREAM_TRANSPORT_FAILURE_REASON":             opUpstreamTransportFailureReason,
	"PROTOCOL":                                      opProtocol,
	"RESPONSE_CODE":                                 opResponseCode,
	"RESPONSE_FLAGS":                                opResponseFlags,
	"RESPONSE_CODE_DETAILS":                         opResponseCodeDetails,
	"ROUTE_NAME":                                    opRouteName,
	"REQUESTED_SERVER_NAME":                         opRequestedServerName,
	"CONNECTION_ID":                                 opConnectionID,
	"BYTES_RECEIVED":                                opBytesReceived,
	"BYTES_SENT":                                    opBytesSent,
	"DURATION":                                      opDuration,
	"REQUEST_DURATION":                              opRequestDuration,
	"RESPONSE_DURATION":                             opResponseDuration,
	"UPSTREAM_REQUEST_ATTEMPT_COUNT":                opUpstreamRequestAttemptCount,
	"LOCAL_REPLY_BODY":                              opLocalReplyBody,
}

type part struct {
	kind opKind
	// text is the literal, or the compile-time value of opStatic.
	text string
	// present is false for an opStatic whose source was missing.
	present bool
	// name and alt are REQ/RESP/TRAILER's lower-cased header and fallback.
	name, alt string
	// maxLen truncates the value (":Z"); -1 means no limit.
	maxLen int
	tf     *timeFormat
	// DYNAMIC_METADATA's namespace (in name) and key path; FILTER_STATE's
	// key (in name) and whether it renders PLAIN rather than TYPED.
	path  []string
	plain bool
}

// Formatter is a compiled format string. It is immutable and safe for
// concurrent use.
type Formatter struct {
	src       string
	parts     []part
	omitEmpty bool
	// static is set when the format has no operators: Format returns it
	// without allocating.
	static   bool
	constant string
}

// Compile parses an Envoy format string for access-log style rendering
// (missing values as "-").
func Compile(format string) (*Formatter, error) {
	return CompileWith(format, Options{})
}

// CompileHeaderValue parses a header value as Envoy does for
// request_headers_to_add and response_headers_to_add: missing values render
// as nothing.
func CompileHeaderValue(value string) (*Formatter, error) {
	return CompileWith(value, Options{OmitEmptyValues: true})
}

// CompileWith parses format with options.
func CompileWith(format string, o Options) (*Formatter, error) {
	f := &Formatter{src: format, omitEmpty: o.OmitEmptyValues}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f.parts = append(f.parts, part{kind: opLiteral, text: lit.String(), maxLen: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(format); {
		c := format[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			lit.WriteByte('%')
			i += 2
			continue
		}
		p, n, err := parseCommand(format[i:])
		if err != nil {
			return nil, fmt.Errorf("format %q at position %d: %w", format, i, err)
		}
		flush()
		f.parts = append(f.parts, p)
		i += n
	}
	flush()
	switch {
	case len(f.parts) == 0:
		f.static = true
	case len(f.parts) == 1 && f.parts[0].kind == opLiteral:
		f.static, f.constant = true, f.parts[0].text
	}
	return f, nil
}

// parseCommand parses "%NAME(args):N%" at the start of s and returns the
// part and the number of bytes consumed.
func parseCommand(s string) (part, int, error) {
	i := 1
	for i < len(s) && (s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	name := s[1:i]
	if name == "" || name[0] < 'A' || name[0] > 'Z' {
		return part{}, 0, errors.New("no valid command operator after '%' (write %% for a literal '%')")
	}
	var arg string
	hasArg := false
	if i < len(s) && s[i] == '(' {
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return part{}, 0, fmt.Errorf("command operator %s: missing ')'", name)
		}
		arg, hasArg = s[i+1:i+end], true
		i += end + 1
	}
	maxLen := -1
	if i < len(s) && s[i] == ':' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(s[i+1 : j])
		if err != nil {
			return part{}, 0, fmt.Errorf("command operator %s: bad length %q", name, s[i+1:j])
		}
		maxLen = n
		i = j
	}
	if i >= len(s) || s[i] != '%' {
		return part{}, 0, fmt.Errorf("command operator %s is not terminated by '%%'", name)
	}
	i++
	p := part{maxLen: maxLen}
	switch name {
	case "REQ", "RESP", "TRAILER":
		if !hasArg || arg == "" {
			return part{}, 0, fmt.Errorf("%s requires a header name, e.g. %%%s(x-request-id)%%", name, name)
		}
		main, alt, _ := strings.Cut(arg, "?")
		if main == "" || strings.Contains(alt, "?") {
			return part{}, 0, fmt.Errorf("%s(%s): bad header specification", name, arg)
		}
		switch name {
		case "REQ":
			p.kind = opReq
		case "RESP":
			p.kind = opResp
		default:
			p.kind = opTrailer
		}
		p.name, p.alt = strings.ToLower(main), strings.ToLower(alt)
	case "START_TIME":
		spec := defaultTimeFormat
		if hasArg && arg != "" {
			spec = arg
		}
		tf, err := compileTimeFormat(spec)
		if err != nil {
			return part{}, 0, fmt.Errorf("START_TIME(%s): %w", arg, err)
		}
		p.kind, p.tf = opStartTime, tf
	case "DYNAMIC_METADATA":
		if !hasArg || arg == "" {
			return part{}, 0, errors.New("DYNAMIC_METADATA requires a namespace, e.g. %DYNAMIC_METADATA(envoy.filters.network.rbac:shadow_engine_result)%")
		}
		keys := strings.Split(arg, ":")
		if slices.Contains(keys, "") {
			return part{}, 0, fmt.Errorf("DYNAMIC_METADATA(%s): empty namespace or key", arg)
		}
		p.kind, p.name, p.path = opDynamicMetadata, keys[0], keys[1:]
	case "FILTER_STATE":
		if !hasArg || arg == "" {
			return part{}, 0, errors.New("FILTER_STATE requires a key, e.g. %FILTER_STATE(envoy.tcp_proxy.cluster)%")
		}
		key, form, _ := strings.Cut(arg, ":")
		switch {
		case key == "":
			return part{}, 0, fmt.Errorf("FILTER_STATE(%s): empty key", arg)
		case form == "" || form == "TYPED":
		case form == "PLAIN":
			p.plain = true
		case strings.HasPrefix(form, "TYPED:"):
			return part{}, 0, fmt.Errorf("FILTER_STATE(%s): the FIELD form (KEY:TYPED:FIELD) is not supported", arg)
		default:
			return part{}, 0, fmt.Errorf("FILTER_STATE(%s): serialization must be PLAIN or TYPED", arg)
		}
		p.kind, p.name = opFilterState, key
	case "HOSTNAME":
		h, err := os.Hostname()
		p.kind, p.text, p.present = opStatic, h, err == nil && h != ""
	case "ENVIRONMENT":
		if !hasArg || arg == "" {
			return part{}, 0, errors.New("ENVIRONMENT requires a variable name")
		}
		v, ok := os.LookupEnv(arg)
		p.kind, p.text, p.present = opStatic, v, ok && v != ""
	default:
		k, ok := simpleOps[name]
		if !ok {
			return part{}, 0, fmt.Errorf("unsupported command operator %%%s%%", name)
		}
		if hasArg {
			return part{}, 0, fmt.Errorf("command operator %s takes no argument", name)
		}
		p.kind = k
	}
	return p, i, nil
}

// String returns the source format string.
func (f *Formatter) String() string { return f.src }

// Static reports whether the format has no command operators, and if so
// its (unescaped) value.
func (f *Formatter) Static() (string, bool) { return f.constant, f.static }

// Format renders the format string. Formats without operators return their
// constant without allocating.
func (f *Formatter) Format(ctx *Context) string {
	if f.static {
		return f.constant
	}
	var buf [128]byte
	return string(f.Append(buf[:0], ctx))
}

// Append renders the format string onto dst.
func (f *Formatter) Append(dst []byte, ctx *Context) []byte {
	if f.static {
		return append(dst, f.constant...)
	}
	if ctx == nil {
		ctx = &emptyContext
	}
	for i := range f.parts {
		p := &f.parts[i]
		if p.kind == opLiteral {
			dst = append(dst, p.text...)
			continue
		}
		start := len(dst)
		var ok bool
		dst, ok = p.appendValue(dst, ctx)
		if !ok {
			dst = dst[:start]
			if !f.omitEmpty {
				dst = append(dst, '-')
			}
			continue
		}
		if p.maxLen >= 0 && len(dst)-start > p.maxLen {
			dst = dst[:start+p.maxLen]
		}
	}
	return dst
}

// appendValue appends the operator's value; ok is false when the value is
// missing (rendered "-" or nothing).
func (p *part) appendValue(dst []byte, ctx *Context) ([]byte, bool) {
	switch p.kind {
	case opStatic:
		return append(dst, p.text...), p.present
	case opReq:
		if ctx.Request == nil {
			return dst, false
		}
		v, ok := requestHeader(ctx.Request, p.name)
		if !ok && p.alt != "" {
			v, ok = requestHeader(ctx.Request, p.alt)
		}
		return append(dst, v...), ok && v != ""
	case opResp:
		return appendHeader(dst, ctx.ResponseHeaders, p.name, p.alt)
	case opTrailer:
		return appendHeader(dst, ctx.ResponseTrailers, p.name, p.alt)
	case opLocalReplyBody:
		return append(dst, ctx.LocalReplyBody...), true // "" when empty, as in Envoy
	}
	si := ctx.Info
	if si == nil {
		return dst, false
	}
	switch p.kind {
	case opDownstreamRemoteAddress:
		return appendAddrPort(dst, si.DownstreamRemoteAddr)
	case opDownstreamRemoteAddressWithoutPort:
		return appendAddr(dst, si.DownstreamRemoteAddr)
	case opDownstreamRemotePort:
		return appendPort(dst, si.DownstreamRemoteAddr)
	case opDownstreamDirectRemoteAddress:
		return appendAddrPort(dst, si.DownstreamDirectAddr)
	case opDownstreamDirectRemoteAddressWithoutPort:
		return appendAddr(dst, si.DownstreamDirectAddr)
	case opDownstreamDirectRemotePort:
		return appendPort(dst, si.DownstreamDirectAddr)
	case opDownstreamLocalAddress:
		return appendAddrPort(dst, si.DownstreamLocalAddr)
	case opDownstreamLocalAddressWithoutPort:
		return appendAddr(dst, si.DownstreamLocalAddr)
	case opDownstreamLocalPort:
		return appendPort(dst, si.DownstreamLocalAddr)
	case opUpstreamRemoteAddress, opUpstreamHost:
		return append(dst, si.UpstreamHost...), si.UpstreamHost != ""
	case opUpstreamCluster:
		return append(dst, si.UpstreamCluster...), si.UpstreamCluster != ""
	case opUpstreamLocalAddress:
		return append(dst, si.UpstreamLocalAddr...), si.UpstreamLocalAddr != ""
	case opUpstreamTransportFailureReason:
		return append(dst, si.UpstreamTransportFailureReason...), si.UpstreamTransportFailureReason != ""
	case opStartTime:
		if si.StartTime.IsZero() {
			return dst, false
		}
		return p.tf.append(dst, si.StartTime), true
	case opProtocol:
		if si.Protocol == 0 {
			return dst, false
		}
		return append(dst, si.Protocol.String()...), true
	case opResponseCode:
		// Envoy prints 0 when no response was started.
		return strconv.AppendInt(dst, int64(si.ResponseCode), 10), true
	case opResponseFlags:
		// Envoy renders "no flags" as the value "-", not as a missing
		// value: JSON logs show "-" rather than null.
		if si.Flags == 0 {
			return append(dst, '-'), true
		}
		return si.Flags.AppendTo(dst), true
	case opResponseCodeDetails:
		return append(dst, si.ResponseCodeDetails...), si.ResponseCodeDetails != ""
	case opRouteName:
		return append(dst, si.RouteName...), si.RouteName != ""
	case opRequestedServerName:
		return append(dst, si.RequestedServerName...), si.RequestedServerName != ""
	case opConnectionID:
		return strconv.AppendUint(dst, si.ConnectionID, 10), true
	case opBytesReceived:
		return strconv.AppendUint(dst, si.BytesReceived, 10), true
	case opBytesSent:
		return strconv.AppendUint(dst, si.BytesSent, 10), true
	case opDuration:
		return appendMillis(dst, si.LastDownstreamTxByte)
	case opRequestDuration:
		return appendMillis(dst, si.LastDownstreamRxByte)
	case opResponseDuration:
		return appendMillis(dst, si.FirstUpstreamRxByte)
	case opUpstreamRequestAttemptCount:
		return strconv.AppendUint(dst, uint64(si.Attempts), 10), true
	case opDynamicMetadata:
		dst, kind := p.appendMetadata(dst, si.Dynamic)
		return dst, kind != KindMissing
	case opFilterState:
		dst, kind := p.appendFilterState(dst, si.Dynamic)
		return dst, kind != KindMissing
	}
	return dst, false
}

func appendHeader(dst []byte, h message.Headers, name, alt string) ([]byte, bool) {
	v, ok := h.Get(name)
	if !ok && alt != "" {
		v, ok = h.Get(alt)
	}
	return append(dst, v...), ok && v != ""
}

func appendMillis(dst []byte, d time.Duration) ([]byte, bool) {
	if d <= 0 {
		return dst, false
	}
	return strconv.AppendInt(dst, d.Milliseconds(), 10), true
}

// requestHeader looks a header up, mapping the pseudo-headers Legate keeps
// as Request fields. Host is :authority (HTTP/1 Host becomes :authority, as
// in Envoy).
func requestHeader(r *message.Request, name string) (string, bool) {
	if len(name) > 0 && (name[0] == ':' || name == "host") {
		switch name {
		case ":path":
			return r.Path, r.Path != ""
		case ":authority", "host":
			return r.Authority, r.Authority != ""
		case ":method":
			return r.Method, r.Method != ""
		case ":scheme":
			return r.Scheme, r.Scheme != ""
		}
		return "", false
	}
	return r.Header.Get(name)
}

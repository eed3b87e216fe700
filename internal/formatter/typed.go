package formatter

// Typed rendering is for JSON access logs (typed_json_format, and
// log_format.json_format): a value that is exactly one command operator
// keeps that operator's type, so "%RESPONSE_CODE%" becomes 200, not "200",
// and a missing value becomes null rather than "-".

// Kind is the JSON type of a value rendered by AppendTyped.
type Kind uint8

const (
	// KindMissing: the operator had no value; nothing was appended.
	KindMissing Kind = iota
	// KindString: the appended bytes are unescaped text.
	KindString
	// KindNumber: the appended bytes are a JSON number.
	KindNumber
	// KindJSON: the appended bytes are one JSON value (a bool, object,
	// list, or an already quoted string), to be written as they are.
	KindJSON
)

// numeric reports whether the operator's value is a number in typed output:
// codes, sizes, durations, counts, ids and ports.
func (k opKind) numeric() bool {
	switch k {
	case opResponseCode, opBytesReceived, opBytesSent, opDuration, opRequestDuration, opResponseDuration,
		opConnectionID, opUpstreamRequestAttemptCount,
		opDownstreamRemotePort, opDownstreamDirectRemotePort, opDownstreamLocalPort:
		return true
	}
	return false
}

// AppendTyped renders f as a typed JSON value. A format that is exactly one
// command operator yields that operator's own type, or KindMissing with
// nothing appended; a truncated value (":N") is a string. Any other format
// renders as Append does and is a string.
func (f *Formatter) AppendTyped(dst []byte, ctx *Context) ([]byte, Kind) {
	if f.static || len(f.parts) != 1 || f.parts[0].kind == opLiteral {
		return f.Append(dst, ctx), KindString
	}
	if ctx == nil {
		ctx = &emptyContext
	}
	p := &f.parts[0]
	switch p.kind {
	case opDynamicMetadata, opFilterState:
		// These keep their value's own type, and typed output ignores
		// the maximum length, as in Envoy.
		if ctx.Info == nil {
			return dst, KindMissing
		}
		if p.kind == opDynamicMetadata {
			return p.appendMetadata(dst, ctx.Info.Dynamic)
		}
		return p.appendFilterState(dst, ctx.Info.Dynamic)
	}
	start := len(dst)
	out, ok := p.appendValue(dst, ctx)
	switch {
	case !ok:
		return out[:start], KindMissing
	case p.maxLen >= 0 && len(out)-start > p.maxLen:
		return out[:start+p.maxLen], KindString
	case p.kind.numeric():
		return out, KindNumber
	}
	return out, KindString
}

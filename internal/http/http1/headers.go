package http1

import (
	"github.com/legate-proxy/legate/internal/http/message"
)

// msgInfo is what the framing and hop-by-hop fields of a message said.
type msgInfo struct {
	cl             int64 // -1 when absent
	chunked        bool
	hasTE          bool
	connClose      bool
	connKeepAlive  bool
	connUpgrade    bool
	expectContinue bool
	hostCount      int
	host           string
	upgradeAt      int // index in out of the upgrade field, or -1
}

// classify copies the end-to-end fields of s into out[:0] and records the
// framing and hop-by-hop ones in the returned msgInfo. Both sides share it so
// requests and responses follow the same rules. named collects header names
// listed in Connection (scratch owned by the caller).
func classify(s string, fields []field, out message.Headers, isReq bool, named *[]string) (message.Headers, msgInfo, error) {
	in := msgInfo{cl: -1, upgradeAt: -1}
	out = out[:0]
	*named = (*named)[:0]
	for _, f := range fields {
		name, value := s[f.ns:f.ne], s[f.vs:f.ve]
		switch name {
		case "content-length":
			n, ok := parseContentLength(value)
			if !ok {
				return out, in, badRequest(detailCodecError, "invalid content-length")
			}
			if in.cl >= 0 && in.cl != n {
				return out, in, badRequest(detailCodecError, "conflicting content-length")
			}
			in.cl = n
		case "transfer-encoding":
			// Only a single "chunked" coding is accepted, across all
			// Transfer-Encoding fields: anything else is a smuggling vector.
			if in.hasTE {
				return out, in, badRequest(detailInvalidTE, "repeated transfer-encoding")
			}
			in.hasTE = true
			if !asciiEqualFold(value, "chunked") {
				return out, in, badRequest(detailInvalidTE, "unsupported transfer-encoding")
			}
			in.chunked = true
		case "connection":
			for i := 0; i < len(value); {
				var tok string
				tok, i = nextToken(value, i)
				switch {
				case tok == "":
				case !isToken(tok):
					return out, in, badRequest(detailConnectionHeader, "invalid connection header")
				case asciiEqualFold(tok, "close"):
					in.connClose = true
				case asciiEqualFold(tok, "keep-alive"):
					in.connKeepAlive = true
				case asciiEqualFold(tok, "upgrade"):
					in.connUpgrade = true
				default:
					*named = append(*named, tok)
				}
			}
		case "keep-alive", "proxy-connection":
		case "te":
			if isReq && hasToken(value, "trailers") {
				out = append(out, message.Header{Name: name, Value: "trailers"})
			}
		case "host":
			if isReq {
				in.hostCount++
				in.host = value
			} else {
				out = append(out, message.Header{Name: name, Value: value})
			}
		case "expect":
			if isReq && asciiEqualFold(value, "100-continue") {
				in.expectContinue = true
			} else {
				out = append(out, message.Header{Name: name, Value: value})
			}
		case "upgrade":
			if in.upgradeAt >= 0 {
				return out, in, badRequest(detailCodecError, "repeated upgrade header")
			}
			in.upgradeAt = len(out)
			out = append(out, message.Header{Name: name, Value: value})
		default:
			out = append(out, message.Header{Name: name, Value: value})
		}
	}
	if in.hasTE && in.cl >= 0 {
		return out, in, badRequest(detailCLAndChunked, "both content-length and transfer-encoding")
	}
	if in.upgradeAt >= 0 && !in.connUpgrade {
		out = removeAt(out, in.upgradeAt)
		in.upgradeAt = -1
	}
	if len(*named) > 0 {
		out = removeNamed(out, *named)
		in.upgradeAt = -1
		for i := range out {
			if out[i].Name == "upgrade" {
				in.upgradeAt = i
			}
		}
	}
	return out, in, nil
}

func removeAt(h message.Headers, i int) message.Headers {
	copy(h[i:], h[i+1:])
	h[len(h)-1] = message.Header{}
	return h[:len(h)-1]
}

func removeNamed(h message.Headers, named []string) message.Headers {
	j := 0
outer:
	for i := range h {
		for _, n := range named {
			if asciiEqualFold(n, h[i].Name) {
				continue outer
			}
		}
		h[j] = h[i]
		j++
	}
	clear(h[j:])
	return h[:j]
}

// parseContentLength accepts 1*DIGIT only: no sign, no list, no spaces.
func parseContentLength(v string) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// nextToken returns the comma-separated element starting at i, trimmed of
// optional whitespace, and the index after its comma.
func nextToken(v string, i int) (string, int) {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	s := i
	for i < len(v) && v[i] != ',' {
		i++
	}
	e := i
	for e > s && (v[e-1] == ' ' || v[e-1] == '\t') {
		e--
	}
	if i < len(v) {
		i++
	}
	return v[s:e], i
}

// hasToken reports whether the list v contains tok, ignoring parameters.
func hasToken(v, tok string) bool {
	for i := 0; i < len(v); {
		var t string
		t, i = nextToken(v, i)
		for j := 0; j < len(t); j++ {
			if t[j] == ';' {
				t = t[:j]
				break
			}
		}
		for len(t) > 0 && (t[len(t)-1] == ' ' || t[len(t)-1] == '\t') {
			t = t[:len(t)-1]
		}
		if asciiEqualFold(t, tok) {
			return true
		}
	}
	return false
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tcharTab[s[i]] {
			return false
		}
	}
	return true
}

// asciiEqualFold compares s with lower, which must be lower-case ASCII.
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseTrailers validates a trailer block (read by readBlock) and returns
// its fields, minus those a trailer may not carry.
func parseTrailers(block []byte, lim *Limits, fields []field) (message.Headers, []field, error) {
	fields, err := parseFields(block, 0, lim, fields[:0])
	if err != nil || len(fields) == 0 {
		return nil, fields, err
	}
	s := string(block)
	h := make(message.Headers, 0, len(fields))
	for _, f := range fields {
		name := s[f.ns:f.ne]
		switch name {
		case "content-length", "transfer-encoding", "host", "connection", "keep-alive",
			"proxy-connection", "te", "upgrade", "trailer", "expect":
			continue
		}
		h = append(h, message.Header{Name: name, Value: s[f.vs:f.ve]})
	}
	if len(h) == 0 {
		return nil, fields, nil
	}
	return h, fields, nil
}

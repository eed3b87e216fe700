package hcm

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/runtime"
)

// Path and host normalization, applied as Envoy's connection manager
// applies them: before header processing and route matching, so routes,
// filters and the upstream all see the same path. Order (Envoy's):
// escaped slashes, then normalize_path, then merge_slashes, then the
// host's port.

// EscapedSlashes is path_with_escaped_slashes_action.
type EscapedSlashes uint8

const (
	EscapedSlashesKeep EscapedSlashes = iota
	EscapedSlashesReject
	EscapedSlashesUnescapeRedirect
	EscapedSlashesUnescapeForward
)

// StripPort is strip_port_mode.
type StripPort uint8

const (
	StripPortNone StripPort = iota
	StripPortMatching
	StripPortAny
)

// PathOptions are the connection manager's path and host transformations.
type PathOptions struct {
	Normalize      bool
	MergeSlashes   bool
	EscapedSlashes EscapedSlashes
	StripPort      StripPort
}

// Runtime keys that set the defaults, as in Envoy: each is read once, when
// the connection manager is built.
const (
	rtNormalizePath         = "http_connection_manager.normalize_path"
	rtEscapedSlashesAction  = "http_connection_manager.path_with_escaped_slashes_action"
	rtEscapedSlashesEnabled = "http_connection_manager.path_with_escaped_slashes_action_enabled"
)

func pathOptions(pb *hcmv3.HttpConnectionManager, rt *runtime.Snapshot) (PathOptions, error) {
	var o PathOptions
	if v := pb.GetNormalizePath(); v != nil {
		o.Normalize = v.GetValue()
	} else {
		// Envoy's default is off, unless the runtime feature (a
		// percentage, sampled once) turns it on.
		o.Normalize = percentOn(rt.Uint(rtNormalizePath, 0))
	}
	o.MergeSlashes = pb.GetMergeSlashes()
	action := pb.GetPathWithEscapedSlashesAction()
	if action == hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT {
		action = hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction(rt.Uint(rtEscapedSlashesAction, 0))
	}
	if !percentOn(rt.Uint(rtEscapedSlashesEnabled, 100)) {
		action = hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	}
	switch action {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		o.EscapedSlashes = EscapedSlashesKeep
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		o.EscapedSlashes = EscapedSlashesReject
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		o.EscapedSlashes = EscapedSlashesUnescapeRedirect
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		o.EscapedSlashes = EscapedSlashesUnescapeForward
	default:
		return o, fmt.Errorf("path_with_escaped_slashes_action: unknown action %d", action)
	}
	if pb.GetStripAnyHostPort() {
		o.StripPort = StripPortAny
	}
	if pb.GetStripMatchingHostPort() {
		if o.StripPort == StripPortAny {
			return o, fmt.Errorf("strip_matching_host_port: conflicts with strip_any_host_port")
		}
		o.StripPort = StripPortMatching
	}
	return o, nil
}

// percentOn samples a runtime percentage, as Envoy's featureEnabled does.
func percentOn(p uint64) bool {
	return p >= 100 || (p > 0 && rand.Uint64N(100) < p)
}

// pathVerdict is what normalization decided about a request.
type pathVerdict uint8

const (
	pathContinue pathVerdict = iota
	pathReject               // 400 path_normalization_failed
	pathRedirect             // 307 to the transformed path
)

// normalizePath transforms p (path and query) as o says. It returns p
// itself, without allocating, when nothing changes.
func (o *PathOptions) normalizePath(p string) (string, pathVerdict) {
	if p == "" || p[0] != '/' {
		// CONNECT has no path; OPTIONS "*" is not a path.
		return p, pathContinue
	}
	path, query := p, ""
	if i := strings.IndexByte(p, '?'); i >= 0 {
		path, query = p[:i], p[i:]
	}
	verdict := pathContinue
	changed := false
	if o.EscapedSlashes != EscapedSlashesKeep && hasEscapedSlash(path) {
		if o.EscapedSlashes == EscapedSlashesReject {
			return p, pathReject
		}
		path, changed = unescapeSlashes(path), true
		if o.EscapedSlashes == EscapedSlashesUnescapeRedirect {
			verdict = pathRedirect
		}
	}
	if o.Normalize {
		switch needs, ok := needsCanonical(path); {
		case !ok:
			return p, pathReject
		case needs:
			c, ok := canonicalPath(path)
			if !ok {
				return p, pathReject
			}
			path, changed = c, true
		}
	}
	if o.MergeSlashes && strings.Contains(path, "//") {
		path, changed = mergeSlashes(path), true
	}
	if !changed {
		return p, verdict
	}
	return path + query, verdict
}

// hasEscapedSlash finds %2F or %5C in any case.
func hasEscapedSlash(path string) bool {
	for i := strings.IndexByte(path, '%'); i >= 0 && i+2 < len(path); {
		if isEscapedSlash(path[i+1], path[i+2]) {
			return true
		}
		j := strings.IndexByte(path[i+1:], '%')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

func isEscapedSlash(a, b byte) bool {
	return (a == '2' && (b == 'f' || b == 'F')) || (a == '5' && (b == 'c' || b == 'C'))
}

// unescapeSlashes turns %2F into '/' and %5C into '\'.
func unescapeSlashes(path string) string {
	var b strings.Builder
	b.Grow(len(path))
	for i := 0; i < len(path); i++ {
		if path[i] == '%' && i+2 < len(path) && isEscapedSlash(path[i+1], path[i+2]) {
			if path[i+1] == '2' {
				b.WriteByte('/')
			} else {
				b.WriteByte('\\')
			}
			i += 2
			continue
		}
		b.WriteByte(path[i])
	}
	return b.String()
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unreserved is RFC 3986's unreserved set: percent-encoded, these decode.
func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// needsCanonical reports whether canonicalPath would change path (without
// allocating), and false ok for a malformed percent-encoding.
func needsCanonical(path string) (needs, ok bool) {
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '%':
			if i+2 >= len(path) {
				return false, false
			}
			hi, lo := unhex(path[i+1]), unhex(path[i+2])
			if hi < 0 || lo < 0 {
				return false, false
			}
			if unreserved(byte(hi<<4 | lo)) {
				needs = true
			}
			i += 2
		case '\\':
			needs = true
		case '/':
			// A "." or ".." segment.
			r := path[i+1:]
			if strings.HasPrefix(r, ".") && (len(r) == 1 || r[1] == '/' ||
				(r[1] == '.' && (len(r) == 2 || r[2] == '/'))) {
				needs = true
			}
		}
	}
	return needs, true
}

// canonicalPath decodes percent-encoded unreserved characters, treats '\'
// as '/' (as Envoy's URL canonicalizer does) and removes dot segments (RFC
// 3986 section 5.2.4). A ".." above the root is refused (Envoy clamps it
// to the root; Legate rejects it, see compatibility notes), as is a
// malformed percent-encoding.
func canonicalPath(path string) (string, bool) {
	dec := make([]byte, 0, len(path))
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch c {
		case '%':
			if i+2 >= len(path) {
				return "", false
			}
			hi, lo := unhex(path[i+1]), unhex(path[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			if d := byte(hi<<4 | lo); unreserved(d) {
				dec = append(dec, d)
			} else {
				dec = append(dec, path[i:i+3]...)
			}
			i += 2
		case '\\':
			dec = append(dec, '/')
		default:
			dec = append(dec, c)
		}
	}
	// dec starts with '/'. Each segment is appended after a '/'; ".."
	// truncates back to the previous '/'.
	out := make([]byte, 0, len(dec))
	segs := dec[1:]
	for {
		var seg []byte
		last := false
		if j := indexByte(segs, '/'); j >= 0 {
			seg, segs = segs[:j], segs[j+1:]
		} else {
			seg, last = segs, true
		}
		switch string(seg) {
		case ".":
			if last {
				out = append(out, '/')
			}
		case "..":
			if len(out) == 0 {
				return "", false
			}
			out = out[:lastSlash(out)]
			if last {
				out = append(out, '/')
			}
		default:
			out = append(out, '/')
			out = append(out, seg...)
		}
		if last {
			break
		}
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return string(out), true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func lastSlash(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '/' {
			return i
		}
	}
	return 0
}

// mergeSlashes collapses runs of '/'.
func mergeSlashes(path string) string {
	b := make([]byte, 0, len(path))
	for i := 0; i < len(path); i++ {
		if path[i] == '/' && i > 0 && path[i-1] == '/' {
			continue
		}
		b = append(b, path[i])
	}
	return string(b)
}

// detailPathNormalization is Envoy's response code detail for both the
// rejection and the redirect.
const detailPathNormalization = "path_normalization_failed"

// applyPaths normalizes the request's path and host. When it answers the
// request itself (400 or a 307 redirect) it returns false.
func (cfg *Config) applyPaths(s *stream, req *message.Request) bool {
	o := &cfg.Paths
	p, verdict := o.normalizePath(req.Path)
	// gRPC clients do not follow redirects: they get the rejection.
	if verdict == pathReject || (verdict == pathRedirect && isGRPC(req)) {
		cfg.Stats.RqFailedPathNormalization.Inc()
		cfg.SendLocalReply(&s.fs, http.StatusBadRequest, "", detailPathNormalization)
		return false
	}
	if verdict == pathRedirect {
		cfg.Stats.RqRedirectedNormalizedPath.Inc()
		cfg.writeLocalReply(&s.fs, httpfilter.LocalReply{Status: http.StatusTemporaryRedirect, Details: detailPathNormalization,
			Headers: message.Headers{{Name: "location", Value: p}}})
		return false
	}
	req.Path = p
	req.Authority = o.stripHostPort(req.Authority, req.Method, s.info.DownstreamLocalAddr.Port())
	return true
}

// stripHostPort removes the port from an authority, as Envoy's
// strip_matching_host_port (only a port equal to listenerPort) and
// strip_any_host_port do. CONNECT keeps its host:port.
func (o *PathOptions) stripHostPort(authority, method string, listenerPort uint16) string {
	if o.StripPort == StripPortNone || method == "CONNECT" {
		return authority
	}
	i := strings.LastIndexByte(authority, ':')
	if i < 0 {
		return authority
	}
	// A colon inside an IPv6 literal's brackets is not a port separator.
	if j := strings.LastIndexByte(authority, ']'); j > i {
		return authority
	}
	port, err := strconv.ParseUint(authority[i+1:], 10, 32)
	if err != nil {
		return authority
	}
	if o.StripPort == StripPortMatching && port != uint64(listenerPort) {
		return authority
	}
	return authority[:i]
}

package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/http/message"
)

// hopByHop are the fields ReadRequest removes (or turns into typed fields);
// net/http keeps most of them in Header, so the differential ignores them.
var hopByHop = []string{"host", "content-length", "transfer-encoding", "connection", "keep-alive",
	"proxy-connection", "te", "expect", "upgrade", "trailer"}

// differential parses raw with ReadRequest and net/http's ReadRequest.
// Whenever ours accepts, net/http must accept with the same meaning. It
// returns whether each side accepted.
func differential(t *testing.T, raw string) (ours, theirs bool) {
	t.Helper()
	req, body, err := readOne(raw, Limits{})
	ours = err == nil
	hr, herr := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	var hbody []byte
	if herr == nil {
		hbody, herr = io.ReadAll(hr.Body)
	}
	theirs = herr == nil
	if !ours {
		return
	}
	if !theirs {
		t.Errorf("we accept what net/http rejects (%v): %q", herr, raw)
		return
	}
	path := hr.RequestURI
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	if hr.URL.IsAbs() || strings.HasPrefix(strings.ToLower(path), "http") {
		path = hr.URL.RequestURI()
		if hr.URL.RawQuery == "" && hr.URL.ForceQuery {
			path += "?"
		}
	}
	host := hr.Host
	if hr.URL.Host != "" {
		host = hr.URL.Host
	}
	if req.Method != hr.Method || req.Path != path || req.Authority != host {
		t.Errorf("%q: got %s %q host %q; net/http %s %q host %q", raw, req.Method, req.Path, req.Authority, hr.Method, path, host)
	}
	if req.Protocol == message.HTTP11 != (hr.ProtoMinor == 1) {
		t.Errorf("%q: protocol %v vs %s", raw, req.Protocol, hr.Proto)
	}
	connNamed := map[string]bool{}
	for _, v := range hr.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			connNamed[strings.ToLower(strings.TrimSpace(tok))] = true
		}
	}
	var want message.Headers
	for name, vals := range hr.Header {
		ln := strings.ToLower(name)
		if slices.Contains(hopByHop, ln) || connNamed[ln] {
			continue
		}
		for _, v := range vals {
			want = append(want, message.Header{Name: ln, Value: v})
		}
	}
	var got message.Headers
	for _, h := range req.Header {
		if !slices.Contains(hopByHop, h.Name) {
			got = append(got, h)
		}
	}
	cmp := func(a, b message.Header) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	}
	slices.SortStableFunc(want, cmp)
	slices.SortStableFunc(got, cmp)
	if !slices.Equal(got, want) {
		t.Errorf("%q: headers %q, net/http %q", raw, got, want)
	}
	if !bytes.Equal(body, hbody) {
		t.Errorf("%q: body %q, net/http %q", raw, body, hbody)
	}
	if req.Body != nil {
		for _, tr := range req.Body.Trailers() {
			if hr.Trailer.Get(tr.Name) != tr.Value {
				t.Errorf("%q: trailer %s=%q, net/http %q", raw, tr.Name, tr.Value, hr.Trailer.Get(tr.Name))
			}
		}
	}
	return
}

// diffCorpus are valid and tricky requests. Entries marked stricter are
// ones net/http accepts and Legate rejects on purpose.
var diffCorpus = []struct {
	raw      string
	stricter string // why we reject what net/http accepts; "" when we should agree
}{
	{raw: benchRequest},
	{raw: "GET / HTTP/1.0\r\n\r\n"},
	{raw: "GET /a%20b?c=d&e HTTP/1.1\r\nHost: h:1\r\nA: 1\r\nA: 2\r\nB:\r\n\r\n"},
	{raw: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"},
	{raw: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
	{raw: "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"},
	{raw: "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n"},
	{raw: "GET http://h.example:81/x?y HTTP/1.1\r\nHost: h.example:81\r\n\r\n"},
	{raw: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\nX-Bar: 2\r\n\r\n"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nX: \t padded \t\r\n\r\n"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n"},
	{raw: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"},
	{raw: "GET /#frag HTTP/1.1\r\nHost: h\r\n\r\n"},
	{raw: "GET / HTTP/1.1\r\nHost: \r\n\r\n"},
	{raw: "PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"},
	{raw: "GET / HTTP/1.1\r\nhost: h\r\nx_under: 1\r\n\r\n"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nX: a\"b\\c\r\n\r\n"},
	{raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n000003\r\nabc\r\n0000\r\n\r\n"},

	// Rejected by both.
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n"},
	{raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
	{raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"},

	// Stricter than net/http's ReadRequest, on purpose.
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n", stricter: "whitespace between field name and colon (RFC 9112 5.1 MUST reject)"},
	{raw: "GET / HTTP/1.1\r\n\r\n", stricter: "missing Host on HTTP/1.1 (net/http checks it in its server, not ReadRequest)"},
	{raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", stricter: "whitespace on chunk-size lines"},
	{raw: "GET / HTTP/1.1\nHost: h\n\n", stricter: "bare LF line ends (smuggling vector)"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", stricter: "obs-fold (RFC 9112 lets servers reject it)"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", stricter: "CTLs in field values"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", stricter: "DEL in field values"},
	{raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", stricter: "both Content-Length and Transfer-Encoding"},
	{raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", stricter: "Transfer-Encoding on HTTP/1.0"},
	{raw: "GET / HTTP/1.2\r\nHost: h\r\n\r\n", stricter: "HTTP/1.x minor versions other than 0 and 1 (505)"},
	{raw: "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", stricter: "non-ASCII request-target"},
	{raw: "GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n", stricter: "userinfo in absolute-form"},
	{raw: "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", stricter: "CONNECT not supported yet"},
	{raw: "GET * HTTP/1.1\r\nHost: h\r\n\r\n", stricter: "'*' only for OPTIONS"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: a\r\nUpgrade: b\r\nConnection: upgrade\r\n\r\n", stricter: "repeated Upgrade on an upgrade request"},
	{raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a b\r\nabc\r\n0\r\n\r\n", stricter: "malformed chunk extensions"},
	{raw: "GET / HTTP/1.1\r\nHost: h\r\nConnection: a b\r\n\r\n", stricter: "Connection must be a token list"},
	{raw: "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n"},  // both reject
	{raw: "GET /a?%zz HTTP/1.1\r\nHost: h\r\n\r\n"}, // both accept: queries are opaque
}

func TestDifferentialNetHTTP(t *testing.T) {
	for _, tc := range diffCorpus {
		ours, theirs := differential(t, tc.raw)
		switch {
		case ours && tc.stricter != "":
			t.Errorf("expected to reject (%s): %q", tc.stricter, tc.raw)
		case !ours && theirs && tc.stricter == "":
			_, _, err := readOne(tc.raw, Limits{})
			t.Errorf("we reject what net/http accepts, not listed as stricter (%v): %q", err, tc.raw)
		}
	}
}

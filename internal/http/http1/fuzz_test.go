package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/http/message"
)

// The fuzz targets of the HTTP/1 codec. Their seed corpora live in
// testdata/fuzz/<FuzzName>/ (known attack vectors: CL/TE smuggling,
// obs-fold, bare LF, NUL, huge chunk sizes...) and run with every
// `go test`; `make fuzz` runs each target for FUZZTIME.

const (
	sentinelRequest  = "GET /sentinel HTTP/1.1\r\nHost: sentinel\r\n\r\n"
	sentinelResponse = "HTTP/1.1 299 Sentinel\r\nContent-Length: 0\r\n\r\n" // no body: it may answer a HEAD
)

// parsedRequest is what a request means once parsed: what a proxy
// forwards. Protocol is left out: the client side always writes HTTP/1.1.
type parsedRequest struct {
	method, path, authority string
	header, trailers        message.Headers
	body                    []byte
	chunked                 bool
}

// parseRequests reads every request in raw, reading each body whole and
// answering each request so that the next may be read, until an error or
// the end of the input. rest is the number of bytes never consumed.
func parseRequests(raw string) (reqs []parsedRequest, err error, rest int) {
	mc := newMemConn(raw)
	c := NewServerConn(mc, Limits{})
	for {
		var req message.Request
		if err = c.ReadRequest(&req); err != nil {
			break
		}
		p := parsedRequest{method: req.Method, path: req.Path, authority: req.Authority,
			header: slices.Clone(req.Header), chunked: req.ContentLength < 0}
		if req.Body != nil {
			if p.body, err = io.ReadAll(req.Body); err != nil {
				break
			}
			p.trailers = req.Body.Trailers()
		}
		reqs = append(reqs, p)
		if err = c.ResponseWriter().WriteHeader(200, nil, 0); err == nil {
			err = c.FinishResponse()
		}
		if err != nil {
			break
		}
		if !c.KeepAlive() {
			break
		}
	}
	return reqs, err, c.bufs.br.Buffered() + mc.r.Len()
}

// reserialise writes p the way the proxy sends a request upstream.
func reserialise(t *testing.T, raw string) string {
	t.Helper()
	c := NewServerConn(newMemConn(raw), Limits{})
	var req message.Request
	if err := c.ReadRequest(&req); err != nil {
		t.Fatalf("second parse of an accepted request failed: %v", err)
	}
	out := newMemConn("")
	cc := NewClientConn(out)
	if err := cc.WriteRequest(&req); err != nil {
		t.Fatalf("WriteRequest of an accepted request: %v: %q", err, raw)
	}
	return out.w.String()
}

func sameRequest(a, b parsedRequest) bool {
	return a.method == b.method && a.path == b.path && a.authority == b.authority &&
		slices.Equal(a.header, b.header) && slices.Equal(a.trailers, b.trailers) &&
		bytes.Equal(a.body, b.body) && a.chunked == b.chunked
}

// FuzzReadRequest: the parser never panics; it rejects with 400, 431 or
// 505 only; what it accepts has a valid method, path and fields, and
// net/http accepts with the same meaning (differential); the request, as
// the proxy re-serialises it upstream, parses to the same request; and
// framing is exact: appending another request after a request consumed
// whole changes nothing about the first and the appended one comes next.
func FuzzReadRequest(f *testing.F) {
	for _, tc := range diffCorpus {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req, _, err := readOne(raw, Limits{})
		var pe *ProtocolError
		if err != nil && errors.As(err, &pe) && pe.Status != 400 && pe.Status != 431 && pe.Status != 505 {
			t.Fatalf("status %d: %q", pe.Status, raw)
		}
		if err == nil {
			if req.Method == "" || req.Path == "" {
				t.Fatalf("accepted with empty method or path: %q", raw)
			}
			for _, h := range req.Header {
				if !isToken(h.Name) || strings.ToLower(h.Name) != h.Name || !validValue(h.Value) {
					t.Fatalf("bad header %q accepted: %q", h, raw)
				}
				if h.Name == "content-length" || h.Name == "transfer-encoding" || h.Name == "connection" {
					t.Fatalf("framing header %q left in the request: %q", h.Name, raw)
				}
			}
		}
		differential(t, raw)

		reqs, err, rest := parseRequests(raw)
		if len(reqs) == 0 {
			return
		}
		first := reqs[0]
		// Re-serialised upstream, the request means the same.
		up := reserialise(t, raw)
		again, err2, rest2 := parseRequests(up)
		if err2 != nil && err2 != io.EOF || len(again) != 1 || rest2 != 0 {
			t.Fatalf("re-serialised request does not parse back (%v, %d requests, %d left):\nin  %q\nout %q", err2, len(again), rest2, raw, up)
		}
		if !sameRequest(first, again[0]) {
			t.Fatalf("re-serialised request means something else:\nin  %q\nout %q\n%+v\n%+v", raw, up, first, again[0])
		}
		// Exact framing: the whole input was one request that could be
		// followed by another.
		if len(reqs) == 1 && err == io.EOF && rest == 0 {
			more, merr, mrest := parseRequests(raw + sentinelRequest)
			if len(more) != 2 || mrest != 0 || merr != io.EOF || !sameRequest(more[0], first) || more[1].path != "/sentinel" {
				t.Fatalf("a request followed by another is framed differently (%v, %d requests): %q", merr, len(more), raw)
			}
		}
	})
}

type parsedResponse struct {
	status   int
	kind     bodyKind
	cl       int64
	header   message.Headers
	body     []byte
	trailers message.Headers
	upgraded bool
}

// readResponses reads up to max responses to method from raw on one
// ClientConn, each body whole, as long as the framing allows another.
func readResponses(raw, method string, max int) (rs []parsedResponse, err error, rest int) {
	mc := newMemConn(raw)
	c := NewClientConn(mc)
	c.wrote.Store(true)
	for len(rs) < max {
		var resp message.Response
		if err = c.ReadResponse(&resp, method); err != nil {
			break
		}
		p := parsedResponse{status: resp.Status, kind: c.body.kind, cl: resp.ContentLength,
			header: slices.Clone(resp.Header), upgraded: c.upgraded}
		if resp.Body != nil {
			if p.body, err = io.ReadAll(resp.Body); err != nil {
				break
			}
			p.trailers = resp.Body.Trailers()
		}
		rs = append(rs, p)
		if c.close || c.upgraded || !c.body.done {
			// The framing ends the connection here. (Reusable also wants
			// nothing buffered: an answer nobody asked for yet.)
			break
		}
	}
	return rs, err, c.bufs.br.Buffered() + mc.r.Len()
}

// netHTTPResponse reads the final response as net/http's client does
// (skipping 1xx other than 101), its body whole.
func netHTTPResponse(raw, method string) (resp *http.Response, body []byte, rest int, err error) {
	sr := strings.NewReader(raw)
	br := bufio.NewReader(sr)
	for i := 0; i <= maxInterim; i++ {
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return nil, nil, 0, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == 101 {
			break
		}
	}
	if resp.StatusCode < 200 && resp.StatusCode != 101 {
		return nil, nil, 0, errors.New("too many interim responses")
	}
	body, err = io.ReadAll(resp.Body)
	return resp, body, br.Buffered() + sr.Len(), err
}

// FuzzReadResponse is the differential of the upstream response parser
// against net/http's (http.ReadResponse) for framing: whenever Legate
// accepts a response and reads its body, net/http accepts it with the same
// status and the same framing (no body, content-length, chunked or
// close-delimited), reads the same body, and the next response starts at
// the same byte. Where they disagree Legate must be the one that rejects.
// Also: malformed responses are 502s; no framing field is passed on; a
// response that leaves the connection reusable consumed exactly its own
// bytes (a response appended after it is read next, unchanged).
func FuzzReadResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		rs, err, rest := readResponses(raw, method, 1)
		var pe *ProtocolError
		if errors.As(err, &pe) && pe.Status != 502 {
			t.Fatalf("malformed response is %d, not 502: %q", pe.Status, raw)
		}
		if len(rs) == 0 {
			return
		}
		r := rs[0]
		if r.status < 200 && r.status != 101 {
			t.Fatalf("interim %d returned as the response: %q", r.status, raw)
		}
		for _, h := range r.header {
			switch h.Name {
			case "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection":
				t.Fatalf("framing field %q passed on: %q", h.Name, raw)
			case "upgrade":
				if r.status != 101 {
					t.Fatalf("upgrade passed on in a %d: %q", r.status, raw)
				}
			}
		}
		noBody := head || r.status == 204 || r.status == 304 || r.status == 101
		if noBody && (r.kind != bodyNone || len(r.body) > 0) {
			t.Fatalf("%s %d has a body (%d): %q", method, r.status, r.kind, raw)
		}

		hresp, hbody, hrest, herr := netHTTPResponse(raw, method)
		if herr != nil {
			t.Fatalf("we accept what net/http rejects (%v): %q", herr, raw)
		}
		if hresp.StatusCode != r.status {
			t.Fatalf("status %d, net/http %d: %q", r.status, hresp.StatusCode, raw)
		}
		if r.status == 101 {
			return // the bytes after it belong to the upgraded protocol
		}
		hchunked := len(hresp.TransferEncoding) > 0 && hresp.TransferEncoding[0] == "chunked"
		switch r.kind {
		case bodyNone:
			if len(hbody) != 0 {
				t.Fatalf("no body, net/http reads %q: %q", hbody, raw)
			}
		case bodyFixed:
			if hchunked || hresp.ContentLength != r.cl {
				t.Fatalf("content-length %d, net/http %d (chunked %v): %q", r.cl, hresp.ContentLength, hchunked, raw)
			}
		case bodyChunked:
			if !hchunked {
				t.Fatalf("chunked, net/http not: %q", raw)
			}
			for _, tr := range r.trailers {
				if hresp.Trailer.Get(tr.Name) != tr.Value {
					t.Fatalf("trailer %s=%q, net/http %q: %q", tr.Name, tr.Value, hresp.Trailer.Get(tr.Name), raw)
				}
			}
		case bodyClose:
			if hchunked || hresp.ContentLength != -1 || !hresp.Close {
				t.Fatalf("close-delimited, net/http: content-length %d chunked %v close %v: %q", hresp.ContentLength, hchunked, hresp.Close, raw)
			}
		}
		if !bytes.Equal(r.body, hbody) {
			t.Fatalf("body %q, net/http %q: %q", r.body, hbody, raw)
		}
		if rest != hrest {
			t.Fatalf("next response at %d, net/http at %d: %q", len(raw)-rest, len(raw)-hrest, raw)
		}
		if hresp.Close && r.kind != bodyClose {
			// net/http would not reuse the connection; neither may we.
			if _, _, reusable := reusableAfter(raw, method); reusable {
				t.Fatalf("reusable where net/http closes: %q", raw)
			}
		}
		// Exact framing when reusable: an appended response comes next.
		if _, left, reusable := reusableAfter(raw, method); reusable && left == 0 {
			more, merr, mrest := readResponses(raw+sentinelResponse, method, 2)
			if merr != nil || len(more) != 2 || mrest != 0 || more[1].status != 299 ||
				!bytes.Equal(more[0].body, r.body) || more[0].status != r.status {
				t.Fatalf("a response followed by another is framed differently (%v, %d responses): %q", merr, len(more), raw)
			}
		}
	})
}

// reusableAfter reads one response and its body and reports the bytes
// left and whether the connection could carry another request.
func reusableAfter(raw, method string) (parsedResponse, int, bool) {
	mc := newMemConn(raw)
	c := NewClientConn(mc)
	c.wrote.Store(true)
	var resp message.Response
	if err := c.ReadResponse(&resp, method); err != nil {
		return parsedResponse{}, 0, false
	}
	if resp.Body != nil {
		if _, err := io.ReadAll(resp.Body); err != nil {
			return parsedResponse{}, 0, false
		}
	}
	return parsedResponse{status: resp.Status}, c.bufs.br.Buffered() + mc.r.Len(), c.Reusable()
}

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: y\r\n\r\n",
	"HTTP/1.0 200 OK\r\n\r\nbody",
	"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON",
	"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 39\r\n\r\n" + strings.Repeat("x", 39),
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nab",
	"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nab",
	"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nab",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=\"q\\\"x\"\r\na\r\n0\r\n\r\n",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.1 200 OK\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 199 X\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 099 Low\r\n\r\n",
	"HTTP/1.1 600 High\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
	"HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n",
}

// FuzzChunked feeds arbitrary chunked bodies. Whenever we accept one,
// net/http's chunked reader decodes the same bytes; the request and the
// response side decode it the same way; the chunk-extension limit holds;
// and the body ends exactly where the next message begins.
func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"3\r\nabc\r\n0\r\n\r\n",
		"1;a=b\r\nx\r\n0\r\nT: v\r\n\r\n",
		"a\r\n0123456789\r\n0\r\n\r\n",
		"3\r\nabc\n0\r\n\r\n",
		"0\r\n\r\n",
		"0000000000000003\r\nabc\r\n0\r\n\r\n",
		"fffffffffffffff\r\n",
		"-1\r\nx\r\n0\r\n\r\n",
		"0x3\r\nabc\r\n0\r\n\r\n",
		"3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
		"3;" + strings.Repeat("a", 2000) + "\r\nabc\r\n0\r\n\r\n",
		"3\r\nabcXX0\r\n\r\n",
		"3\r\nabc\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"3\r\na\x00c\r\n0\r\n\r\n",
		"3\x00\r\nabc\r\n0\r\n\r\n",
		"\r\n3\r\nabc\r\n0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, chunks string) {
		const head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
		raw := head + chunks
		_, body, err := readOne(raw, Limits{})
		if err != nil {
			return
		}
		if ext := chunkExtBytes(chunks); ext > maxChunkExtBytes {
			t.Fatalf("accepted %d bytes of chunk extensions", ext)
		}
		hr, herr := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if herr != nil {
			t.Fatalf("net/http rejects headers we accept: %v", herr)
		}
		hbody, herr := io.ReadAll(hr.Body)
		if herr != nil {
			t.Fatalf("we accept a chunked body net/http rejects (%v): %q", herr, chunks)
		}
		if !bytes.Equal(body, hbody) {
			t.Fatalf("body %q, net/http %q", body, hbody)
		}
		rs, rerr, _ := readResponses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+chunks, "GET", 1)
		if rerr != nil || len(rs) != 1 || !bytes.Equal(rs[0].body, body) {
			t.Fatalf("the response side decodes differently (%v): %q", rerr, chunks)
		}
		if reqs, perr, rest := parseRequests(raw); len(reqs) == 1 && perr == io.EOF && rest == 0 {
			more, _, _ := parseRequests(raw + sentinelRequest)
			if len(more) != 2 || more[1].path != "/sentinel" {
				t.Fatalf("the chunked body does not end where the next request begins: %q", chunks)
			}
		}
	})
}

// chunkExtBytes counts the bytes after the chunk size on each size line
// of a body the parser accepted, the way readChunkSize does.
func chunkExtBytes(chunks string) int {
	br := bufio.NewReader(strings.NewReader(chunks))
	total := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return total
		}
		line = strings.TrimSuffix(line, "\r\n")
		i := 0
		var size int64
		for i < len(line) && hexVal[line[i]] >= 0 {
			size = size<<4 | int64(hexVal[line[i]])
			i++
		}
		total += len(line) - i
		if size == 0 {
			return total
		}
		if _, err := br.Discard(int(size) + 2); err != nil {
			return total
		}
	}
}

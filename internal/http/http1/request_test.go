package http1

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/http/message"
)

// readOne parses raw as one request, reading its body to the end.
func readOne(raw string, lim Limits) (*message.Request, []byte, error) {
	// Not released: the returned Body lives in the ServerConn.
	c := NewServerConn(newMemConn(raw), lim)
	var req message.Request
	if err := c.ReadRequest(&req); err != nil {
		return nil, nil, err
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return &req, b, err
		}
		body = b
	}
	return &req, body, nil
}

func TestReadRequestRejects(t *testing.T) {
	long := strings.Repeat("a", 70<<10)
	many := strings.Repeat("x-a: b\r\n", 101)
	cases := []struct {
		name    string
		raw     string
		lim     Limits
		status  int
		details string
	}{
		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Limits{}, 400, detailCLAndChunked},
		{"te and cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", Limits{}, 400, detailCLAndChunked},
		{"differing cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", Limits{}, 400, detailCodecError},
		{"cl list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", Limits{}, 400, detailCodecError},
		{"cl sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", Limits{}, 400, detailCodecError},
		{"cl negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Limits{}, 400, detailCodecError},
		{"cl empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", Limits{}, 400, detailCodecError},
		{"cl huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", Limits{}, 400, detailCodecError},
		{"te gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", Limits{}, 400, detailInvalidTE},
		{"te gzip chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", Limits{}, 400, detailInvalidTE},
		{"te chunked chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", Limits{}, 400, detailInvalidTE},
		{"te twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Limits{}, 400, detailInvalidTE},
		{"te identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", Limits{}, 400, detailInvalidTE},
		{"te xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", Limits{}, 400, detailInvalidTE},
		{"te on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Limits{}, 400, detailInvalidTE},
		{"te with space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"bare LF header", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", Limits{}, 400, detailCodecError},
		{"bare LF end", "GET / HTTP/1.1\r\nHost: a\r\n\n", Limits{}, 400, detailCodecError},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n", Limits{}, 400, detailCodecError},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", Limits{}, 400, detailCodecError},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nX\t: y\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nXy\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"bad name char", "GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"non-ascii name", "GET / HTTP/1.1\r\nHost: a\r\nX\xffy: z\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"CTL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"NUL in path", "GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailInvalidURL},
		{"NUL in method", "G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"bad method char", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"no version", "GET /\r\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"lower version", "GET / http/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"http2 version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", Limits{}, 505, detailCodecError},
		{"http1.2 version", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", Limits{}, 505, detailCodecError},
		{"empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailCodecError},
		{"relative path", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailInvalidURL},
		{"star on GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailInvalidURL},
		{"connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", Limits{}, 400, detailInvalidURL},
		{"absolute ftp", "GET ftp://a/b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailInvalidURL},
		{"absolute userinfo", "GET http://u@a/b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailInvalidURL},
		{"absolute empty host", "GET http:///b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailInvalidURL},
		{"non-ascii path", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400, detailInvalidURL},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", Limits{}, 400, detailMissingHost},
		{"userinfo in host", "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", Limits{}, 400, detailInvalidAuthority},
		{"userinfo with password in host", "GET / HTTP/1.1\r\nHost: u:p@a:80\r\n\r\n", Limits{}, 400, detailInvalidAuthority},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Limits{}, 400, detailCodecError},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"bad host slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Limits{}, 400, detailInvalidChars},
		{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + long + "\r\n\r\n", Limits{}, 431, detailHeadersTooLarge},
		{"too large custom", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 200) + "\r\n\r\n", Limits{MaxHeaderBytes: 100}, 431, detailHeadersTooLarge},
		{"too many", "GET / HTTP/1.1\r\nHost: a\r\n" + many + "\r\n", Limits{}, 431, detailTooManyHeaders},
		{"too many custom", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", Limits{MaxHeaders: 2}, 431, detailTooManyHeaders},
		{"underscore rejected", "GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\n\r\n", Limits{Underscores: RejectUnderscores}, 400, detailUnderscore},
		{"bad connection", "GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", Limits{}, 400, detailConnectionHeader},
		{"two upgrades", "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n", Limits{}, 400, detailCodecError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readOne(tc.raw, tc.lim)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a ProtocolError", err)
			}
			if pe.Status != tc.status || pe.Details != tc.details {
				t.Fatalf("got %d %s (%v), want %d %s", pe.Status, pe.Details, pe.Err, tc.status, tc.details)
			}
		})
	}
}

func TestChunkedRejects(t *testing.T) {
	bigExt := strings.Repeat("1;a=b\r\nx\r\n", 5000)
	cases := []struct{ name, chunks string }{
		{"no size", "\r\nabc\r\n0\r\n\r\n"},
		{"not hex", "g\r\nabc\r\n0\r\n\r\n"},
		{"space after size", "3 \r\nabc\r\n0\r\n\r\n"},
		{"space before size", " 3\r\nabc\r\n0\r\n\r\n"},
		{"sign", "+3\r\nabc\r\n0\r\n\r\n"},
		{"0x prefix", "0x3\r\nabc\r\n0\r\n\r\n"},
		{"overflow", "1000000000000000\r\na\r\n0\r\n\r\n"},
		{"bare LF size", "3\nabc\r\n0\r\n\r\n"},
		{"bare CR size", "3\rabc\r\n0\r\n\r\n"},
		{"no CRLF after data", "3\r\nabcX\r\n0\r\n\r\n"},
		{"LF only after data", "3\r\nabc\n0\r\n\r\n"},
		{"bare LF last", "3\r\nabc\r\n0\n\r\n"},
		{"bare LF trailer end", "3\r\nabc\r\n0\r\n\n"},
		{"ext whitespace", "3 ;a=b\r\nabc\r\n0\r\n\r\n"},
		{"ext no name", "3;\r\nabc\r\n0\r\n\r\n"},
		{"ext bad char", "3;a=b c\r\nabc\r\n0\r\n\r\n"},
		{"ext unterminated quote", "3;a=\"b\r\nabc\r\n0\r\n\r\n"},
		{"ext CTL", "3;a\x01\r\nabc\r\n0\r\n\r\n"},
		{"ext too long line", "3;a=" + strings.Repeat("b", 2000) + "\r\nabc\r\n0\r\n\r\n"},
		{"ext abuse", bigExt + "0\r\n\r\n"},
		{"trailer obs-fold", "3\r\nabc\r\n0\r\nX: a\r\n b\r\n\r\n"},
		{"trailer bad name", "3\r\nabc\r\n0\r\nX y: a\r\n\r\n"},
		{"trailer NUL", "3\r\nabc\r\n0\r\nX: a\x00\r\n\r\n"},
		{"truncated", "3\r\nab"},
		{"no last chunk", "3\r\nabc\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + tc.chunks
			_, _, err := readOne(raw, Limits{})
			if err == nil {
				t.Fatal("accepted")
			}
			var pe *ProtocolError
			if errors.As(err, &pe) {
				if pe.Status != 400 && pe.Status != 431 {
					t.Fatalf("status %d", pe.Status)
				}
			} else if err != io.ErrUnexpectedEOF {
				t.Fatalf("got %v, want a ProtocolError or io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestReadRequestGolden(t *testing.T) {
	type want struct {
		method, path, authority, scheme string
		proto                           message.Protocol
		header                          message.Headers
		cl                              int64
		body                            string
		trailers                        message.Headers
	}
	cases := []struct {
		name string
		raw  string
		lim  Limits
		want want
	}{
		{"curl", benchRequest, Limits{}, want{
			method: "GET", path: "/service/1?x=1", authority: "localhost:8080", proto: message.HTTP11,
			header: hdrs("user-agent", "curl/8.5.0", "accept", "*/*", "accept-encoding", "gzip, deflate", "x-request-id", "6f1c2b8e-0c1d-4a7b-9d5e-2f3a4b5c6d7e"),
		}},
		{"post fixed", "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello", Limits{}, want{
			method: "POST", path: "/u", authority: "h", proto: message.HTTP11, cl: 5, body: "hello",
			header: hdrs("content-type", "text/plain"),
		}},
		{"identical cl repeated", "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", Limits{}, want{
			method: "POST", path: "/u", authority: "h", proto: message.HTTP11, cl: 2, body: "hi",
		}},
		{"chunked with ext and trailers", "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nTE: trailers, deflate\r\n\r\n" +
			"3;a=b;c=\"d e\"\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 42\r\nContent-Length: 9\r\n\r\n", Limits{}, want{
			method: "POST", path: "/c", authority: "h", proto: message.HTTP11, cl: -1, body: "abc0123456789",
			header: hdrs("te", "trailers"), trailers: hdrs("x-sum", "42"),
		}},
		{"hop by hop", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nX-Secret: s\r\nTE: gzip\r\nUpgrade: websocket\r\nX-A: 1\r\n\r\n", Limits{}, want{
			method: "GET", path: "/", authority: "h", proto: message.HTTP11, header: hdrs("x-a", "1"),
		}},
		{"upgrade kept", "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n", Limits{}, want{
			method: "GET", path: "/ws", authority: "h", proto: message.HTTP11,
			header: hdrs("upgrade", "websocket", "sec-websocket-key", "k"),
		}},
		{"ows and case", "GET / HTTP/1.1\r\nHOST:h:80\r\nX-Mixed-Case:\t v a l \t\r\nEmpty:\r\n\r\n", Limits{}, want{
			method: "GET", path: "/", authority: "h:80", proto: message.HTTP11,
			header: hdrs("x-mixed-case", "v a l", "empty", ""),
		}},
		{"obs-text value", "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n", Limits{}, want{
			method: "GET", path: "/", authority: "h", proto: message.HTTP11, header: hdrs("x", "caf\xc3\xa9"),
		}},
		{"http/1.0 no host", "GET /x HTTP/1.0\r\n\r\n", Limits{}, want{method: "GET", path: "/x", proto: message.HTTP10}},
		{"absolute form", "GET HTTP://Example.com:8080?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", Limits{}, want{
			method: "GET", path: "/?q=1", authority: "Example.com:8080", scheme: "http", proto: message.HTTP11,
		}},
		{"absolute https", "GET https://e.com/a/b HTTP/1.1\r\nHost: e.com\r\n\r\n", Limits{}, want{
			method: "GET", path: "/a/b", authority: "e.com", scheme: "https", proto: message.HTTP11,
		}},
		{"options star", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, want{method: "OPTIONS", path: "*", authority: "h", proto: message.HTTP11}},
		{"fragment stripped", "GET /a?b#c HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, want{method: "GET", path: "/a?b", authority: "h", proto: message.HTTP11}},
		{"expect removed", "PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx", Limits{}, want{
			method: "PUT", path: "/e", authority: "h", proto: message.HTTP11, cl: 1, body: "x",
		}},
		{"underscore dropped", "GET / HTTP/1.1\r\nHost: h\r\nX_A: 1\r\nX-B: 2\r\n\r\n", Limits{Underscores: DropUnderscores}, want{
			method: "GET", path: "/", authority: "h", proto: message.HTTP11, header: hdrs("x-b", "2"),
		}},
		{"underscore allowed", "GET / HTTP/1.1\r\nHost: h\r\nX_A: 1\r\n\r\n", Limits{}, want{
			method: "GET", path: "/", authority: "h", proto: message.HTTP11, header: hdrs("x_a", "1"),
		}},
		{"cl zero", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", Limits{}, want{method: "POST", path: "/", authority: "h", proto: message.HTTP11}},
		{"repeated fields in order", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\n", Limits{}, want{
			method: "GET", path: "/", authority: "h", proto: message.HTTP11, header: hdrs("a", "1", "b", "2", "a", "3"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, body, err := readOne(tc.raw, tc.lim)
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if req.Method != w.method || req.Path != w.path || req.Authority != w.authority || req.Scheme != w.scheme || req.Protocol != w.proto {
				t.Errorf("got %s %q authority %q scheme %q %v", req.Method, req.Path, req.Authority, req.Scheme, req.Protocol)
			}
			if len(req.Header) != 0 || len(w.header) != 0 {
				if !slices.Equal(req.Header, w.header) {
					t.Errorf("header %q, want %q", req.Header, w.header)
				}
			}
			if req.ContentLength != w.cl || string(body) != w.body {
				t.Errorf("content-length %d body %q, want %d %q", req.ContentLength, body, w.cl, w.body)
			}
			if (req.Body == nil) != (w.body == "") {
				t.Errorf("Body nil = %v for body %q", req.Body == nil, w.body)
			}
			if req.Body != nil && !slices.Equal(req.Body.Trailers(), w.trailers) {
				t.Errorf("trailers %q, want %q", req.Body.Trailers(), w.trailers)
			}
		})
	}
}

func TestReadRequestEOF(t *testing.T) {
	if _, _, err := readOne("", Limits{}); err != io.EOF {
		t.Fatalf("empty stream: got %v, want io.EOF", err)
	}
	if _, _, err := readOne("GET / HTTP/1.1\r\nHo", Limits{}); err != io.ErrUnexpectedEOF {
		t.Fatalf("partial header: got %v, want io.ErrUnexpectedEOF", err)
	}
	if _, _, err := readOne("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab", Limits{}); err != io.ErrUnexpectedEOF {
		t.Fatalf("short body: got %v, want io.ErrUnexpectedEOF", err)
	}
}

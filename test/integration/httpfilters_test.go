package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The HTTP filter contract through the binary: per-route filter config at
// every level, disabled and optional filters, local_reply_config and gRPC
// local replies, with the buffer filter as the real filter on it.

// bodyEcho answers with how the body arrived: its length as the upstream
// saw it (-1 when chunked) and the body.
func bodyEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("x-content-length", strconv.FormatInt(r.ContentLength, 10))
		w.Write(b)
	})
}

// chunkedPost posts body without a length (chunked on HTTP/1.1).
func chunkedPost(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	req := mustReq(t, "POST", url, io.MultiReader(strings.NewReader(body)))
	req.ContentLength = -1
	return do(t, defaultClient, req)
}

const bufferFilterType = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"
const bufferPerRouteType = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute"

func TestHTTPFilterPerRouteConfig(t *testing.T) {
	up := startUpstream(t, "body", bodyEcho())
	l := startLegate(t, `
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: {{port "web"}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              typed_per_filter_config:
                buf:
                  "@type": `+bufferPerRouteType+`
                  buffer: {max_request_bytes: 8}
              routes:
              - match: {prefix: "/off"}
                route: {cluster: body}
                typed_per_filter_config:
                  buf: {"@type": `+bufferPerRouteType+`, disabled: true}
              - match: {prefix: "/small"}
                route: {cluster: body}
                typed_per_filter_config:
                  buf: {"@type": `+bufferPerRouteType+`, buffer: {max_request_bytes: 3}}
              - match: {prefix: "/split"}
                route:
                  weighted_clusters:
                    clusters:
                    - name: body
                      weight: 1
                      typed_per_filter_config:
                        buf:
                          "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                          disabled: true
              - match: {prefix: "/"}
                route: {cluster: body}
          http_filters:
          - name: buf
            typed_config: {"@type": `+bufferFilterType+`, max_request_bytes: 1024}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
`+indent(testutil.StaticClusterYAML("body", "", up.Addr), 2)+`
`, nil)

	// Within the virtual host's limit: buffered, so it goes with a length.
	resp, body := chunkedPost(t, l.URL("web", "/"), "hello")
	if resp.StatusCode != 200 || body != "hello" || resp.Header.Get("x-content-length") != "5" {
		t.Fatalf("buffered: %d %q length %s", resp.StatusCode, body, resp.Header.Get("x-content-length"))
	}
	ten := "0123456789"
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/", 413},      // virtual host: 8 bytes
		{"/small", 413}, // route: 3 bytes
		{"/off", 200},   // route disables buffering
		{"/split", 200}, // the weighted cluster disables the filter
	} {
		resp, body := chunkedPost(t, l.URL("web", tt.path), ten)
		if resp.StatusCode != tt.status {
			t.Fatalf("%s: %d %q, want %d", tt.path, resp.StatusCode, body, tt.status)
		}
		switch tt.status {
		case 413:
			if body != "Payload Too Large" {
				t.Fatalf("%s: 413 body %q", tt.path, body)
			}
		case 200:
			if body != ten || resp.Header.Get("x-content-length") != "-1" {
				t.Fatalf("%s: not streamed: %q length %s", tt.path, body, resp.Header.Get("x-content-length"))
			}
		}
	}
	if n := l.Counter(t, "http.web.downstream_rq_too_large"); n != 2 {
		t.Fatalf("http.web.downstream_rq_too_large = %d", n)
	}
}

func TestHTTPFilterDisabledAndOptional(t *testing.T) {
	up := startUpstream(t, "body", bodyEcho())
	l := startLegate(t, `
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: {{port "web"}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/on"}
                route: {cluster: body}
                typed_per_filter_config:
                  buf: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig}
              - match: {prefix: "/"}
                route: {cluster: body}
                typed_per_filter_config:
                  some.unknown.filter:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    is_optional: true
                    config: {"@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute}
          http_filters:
          - name: some.unknown.filter
            is_optional: true
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}
          - name: buf
            disabled: true
            typed_config: {"@type": `+bufferFilterType+`, max_request_bytes: 4}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
`+indent(testutil.StaticClusterYAML("body", "", up.Addr), 2)+`
`, nil)
	if resp, body := chunkedPost(t, l.URL("web", "/"), "hello"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("disabled filter ran: %d %q", resp.StatusCode, body)
	}
	if resp, body := chunkedPost(t, l.URL("web", "/on"), "hello"); resp.StatusCode != 413 {
		t.Fatalf("filter enabled by the route did not run: %d %q", resp.StatusCode, body)
	}
}

// localReplyListener has local_reply_config; /dead goes to a cluster
// nobody listens on, anything else but /ok has no route.
func localReplyListener(t *testing.T) *Legate {
	up := startUpstream(t, "ok", nil)
	return startLegate(t, `
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: {{port "web"}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          local_reply_config:
            mappers:
            - filter:
                header_filter:
                  header: {name: x-teapot, present_match: true}
              status_code: 418
              body: {inline_string: "short and stout"}
              body_format_override:
                text_format: "teapot: %LOCAL_REPLY_BODY%"
            - filter:
                status_code_filter:
                  comparison: {op: EQ, value: {default_value: 503, runtime_key: unused}}
              body: {inline_string: "try later"}
            body_format:
              json_format:
                status: "%RESPONSE_CODE%"
                message: "%LOCAL_REPLY_BODY%"
                details: "%RESPONSE_CODE_DETAILS%"
                path: "%REQ(:PATH)%"
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/ok"}
                route: {cluster: ok}
              - match: {prefix: "/dead"}
                route: {cluster: dead}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
`+indent(testutil.StaticClusterYAML("ok", "", up.Addr), 2)+`
`+indent(testutil.StaticClusterYAML("dead", "", "127.0.0.1:"+strconv.Itoa(closedPort(t))), 2)+`
`, nil)
}

func TestLocalReplyConfig(t *testing.T) {
	l := localReplyListener(t)
	resp, body := httpGet(t, l.URL("web", "/nothing"))
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("404 body is not JSON: %v\n%s", err, body)
	}
	if resp.StatusCode != 404 || resp.Header.Get("content-type") != "application/json" ||
		got["status"] != float64(404) || got["message"] != "" || got["details"] != "route_not_found" || got["path"] != "/nothing" {
		t.Fatalf("404: %d %s %q", resp.StatusCode, resp.Header.Get("content-type"), body)
	}

	req := mustReq(t, "GET", l.URL("web", "/nothing"), nil)
	req.Header.Set("x-teapot", "1")
	resp, body = do(t, defaultClient, req)
	if resp.StatusCode != 418 || body != "teapot: short and stout" || resp.Header.Get("content-type") != "text/plain" {
		t.Fatalf("mapped: %d %q %s", resp.StatusCode, body, resp.Header.Get("content-type"))
	}

	resp, body = httpGet(t, l.URL("web", "/dead"))
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 503 || got["message"] != "try later" {
		t.Fatalf("503: %d %q (%v)", resp.StatusCode, body, err)
	}

	// A request the codec refuses gets the body format too.
	st, raw, _, err := rawExchange(l.Addr("web"), "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 5*time.Second, false)
	if err != nil || st != 400 {
		t.Fatalf("malformed request: %d %v", st, err)
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil || got["status"] != float64(400) || got["message"] != "Bad Request" {
		t.Fatalf("malformed request body: %q (%v)", raw, err)
	}

	// An upstream's own response is not a local reply.
	resp, body = httpGet(t, l.URL("web", "/ok"))
	if resp.StatusCode != 200 || decodeEcho(t, body).Upstream != "ok" {
		t.Fatalf("upstream response: %d %q", resp.StatusCode, body)
	}
}

// gRPC requests get local replies as gRPC status (trailers-only), after
// local_reply_config.
func TestGRPCLocalReply(t *testing.T) {
	l := localReplyListener(t)
	cc, err := grpc.NewClient(l.Addr("web"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		method string
		code   codes.Code
		msg    string
	}{
		{"/pkg.Service/Missing", codes.Unimplemented, ""}, // 404 NR; the JSON body format makes grpc-message
		{"/dead/Method", codes.Unavailable, "try later"},  // 503 UF, body from the mapper
	} {
		err := cc.Invoke(ctx, tt.method, &emptypb.Empty{}, &emptypb.Empty{})
		st, _ := status.FromError(err)
		if st.Code() != tt.code {
			t.Fatalf("%s: %v, want %v", tt.method, err, tt.code)
		}
		if tt.msg != "" && !strings.Contains(st.Message(), tt.msg) {
			t.Fatalf("%s: message %q, want it to contain %q", tt.method, st.Message(), tt.msg)
		}
	}
}

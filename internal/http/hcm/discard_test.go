package hcm

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	_ "github.com/legate-proxy/legate/internal/filter/http/router"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

// directOKConfig compiles pb (stat prefix, codec, protocol options) with
// a route table whose only route answers 200 "ok" without reading the
// request body, and the router filter.
func directOKConfig(t testing.TB, pb *hcmv3.HttpConnectionManager) *Config {
	t.Helper()
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		t.Fatal(err)
	}
	pb.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
		VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
					Status: 200,
					Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "ok"}},
				}},
			}},
		}},
	}}
	pb.HttpFilters = []*hcmv3.HttpFilter{{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}}
	cfg, err := New(pb, Deps{Stats: stats.NewStore(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serveDirect serves HTTP/1 connections on loopback with an HCM whose only
// route answers 200 "ok" without reading the request body.
func serveDirect(t *testing.T) string {
	t.Helper()
	cfg := directOKConfig(t, &hcmv3.HttpConnectionManager{StatPrefix: "discard", CodecType: hcmv3.HttpConnectionManager_HTTP1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				cfg.ServeConn(ctx, &networkfilter.Conn{Conn: c})
			}()
		}
	}()
	return ln.Addr().String()
}

// A body the route never read is discarded to keep the connection when it
// is small and arrives; a body that stays short of its length, one too
// large to discard, or a malformed chunk close the connection instead,
// and nothing of the body is taken for a request.
func TestUnreadBodyDiscard(t *testing.T) {
	addr := serveDirect(t)
	tests := []struct {
		name       string
		req        string
		wantStatus int
		wantKept   bool
	}{
		{"small body arrives", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 200, true},
		{"small chunked body arrives", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, true},
		{"body stays short of its length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello", 200, false},
		{"chunked body never ends", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 200, false},
		{"body too large to discard", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\nhello", 200, false},
		{"malformed chunk hides a request", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Generous: the discard gives up after bodyDiscardTime.
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tt.req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || (tt.wantStatus == 200 && string(body) != "ok") {
				t.Fatalf("first response: %d %q", resp.StatusCode, body)
			}
			if !tt.wantKept {
				// Without sending more (which would be body bytes), the
				// proxy must close: EOF or a reset, not our deadline.
				n, err := br.Read(make([]byte, 1))
				if n > 0 || err == nil {
					t.Fatalf("connection kept: read %d bytes", n)
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("connection held open: %v", err)
				}
				return
			}
			io.WriteString(c, "GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("connection not kept: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("second response: %d", resp.StatusCode)
			}
		})
	}
}

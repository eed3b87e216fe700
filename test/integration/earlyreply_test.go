package integration

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"
)

// An upstream may answer before it has read the whole request body (an
// early 413, say). The response must reach the client, the rest of the
// upload must not be mistaken for the next request, and the proxy must stay
// healthy even though the upstream writer is still copying the body when the
// stream ends — repeated to give that window many chances.
func TestEarlyUpstreamResponse(t *testing.T) {
	t.Parallel()
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 5\r\n\r\nearly")
				// Keep reading slowly, so the proxy is still sending the
				// body when its response is complete.
				buf := make([]byte, 1024)
				for {
					if _, err := br.Read(buf); err != nil {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}(c)
		}
	}()

	l := startLegate(t, bootstrapYAML([]string{listenerYAML("main", routeAll("up"), "")},
		[]string{testutil.StaticClusterYAML("up", "", up.Addr().String())}), nil)

	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for i := range 20 {
		c, err := net.DialTimeout("tcp", l.Addr("main"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
		c.Write(chunk)
		// Keep uploading while the response comes back.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 64 {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("attempt %d: no response: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || string(body) != "early" {
			t.Fatalf("attempt %d: got %d %q, want 413 early", i, resp.StatusCode, body)
		}
		// The rest of the upload is still on the wire: the connection ends
		// after the response, and nothing else comes back on it.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if extra, err := br.ReadByte(); err == nil {
			rest, _ := br.Peek(br.Buffered())
			t.Errorf("attempt %d: more bytes after the response: %q", i, append([]byte{extra}, rest...))
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("attempt %d: the connection stayed open after the response", i)
		}
		c.Close()
		<-done
	}

	// The proxy is healthy: a plain request on a new connection works.
	resp, err := http.Get(l.URL("main", "/after"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), "early") {
		t.Fatalf("after the uploads: %d %q", resp.StatusCode, b)
	}
}

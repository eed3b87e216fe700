package loopback

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestServe: every connection gets its own handler, and handlers still
// blocked on their peers when the test ends are unblocked and waited for
// by cleanup.
func TestServe(t *testing.T) {
	var returned atomic.Int32
	var addr string
	var clients []net.Conn
	// Closed only after the checks, so that nothing but Serve's cleanup
	// can end the handlers.
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	t.Run("inner", func(t *testing.T) {
		addr = Serve(t, func(c net.Conn) {
			defer returned.Add(1)
			io.Copy(c, c)
		})
		for _, msg := range []string{"a\n", "b\n"} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, msg)
			// The echo proves a handler runs for this connection.
			if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != msg {
				t.Fatalf("echo %q, %v; want %q", got, err, msg)
			}
		}
	})
	if n := returned.Load(); n != 2 {
		t.Fatalf("%d handlers returned by the end of cleanup, want 2", n)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("listener still accepting after cleanup")
	}
}

package child

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Poll calls try every interval until it returns nil. It gives up with an
// error when p (which may be nil) exits, when timeout has passed (a
// *TimeoutError holding try's last error) or when ctx ends ("interrupted").
// An exit of p cuts the wait between tries short.
func Poll(ctx context.Context, p *Process, timeout, interval time.Duration, try func() error) error {
	var exited <-chan struct{} // nil, never ready, without a process
	if p != nil {
		exited = p.Done()
	}
	deadline := time.Now().Add(timeout)
	for {
		err := try()
		if err == nil {
			return nil
		}
		if p != nil && !p.Running() {
			return fmt.Errorf("exited before it was ready: %v", p.Err())
		}
		if time.Now().After(deadline) {
			return &TimeoutError{Timeout: timeout, Err: err}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return errInterrupted
		case <-exited:
		case <-t.C:
		}
		t.Stop()
	}
}

// pollInterval is how often WaitHTTP and WaitTCP try: often enough that a
// start-up is noticed promptly, rarely enough to cost nothing.
const pollInterval = 100 * time.Millisecond

// WaitHTTP waits, as Poll does, until a GET of url answers 200.
func WaitHTTP(ctx context.Context, url string, p *Process, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	return Poll(ctx, p, timeout, pollInterval, func() error { return GetOK(client, url) })
}

// WaitTCP waits, as Poll does, until addr accepts TCP connections.
func WaitTCP(ctx context.Context, addr string, p *Process, timeout time.Duration) error {
	return Poll(ctx, p, timeout, pollInterval, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// GetOK GETs url once with client and requires a 200. It reads and closes
// the body, so that the connection can be reused.
func GetOK(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// iface is what advertise detection needs of a network interface.
type iface struct {
	flags net.Flags
	addrs []net.Addr
}

// interfaces lists the host's (the container's) interfaces in index order;
// tests replace it.
var interfaces = func() ([]iface, error) {
	list, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]iface, 0, len(list))
	for _, ifc := range list {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ifc.Name, err)
		}
		out = append(out, iface{flags: ifc.Flags, addrs: addrs})
	}
	return out, nil
}

// firstIPv4 is the first IPv4 address, neither loopback nor link-local, of
// an interface that is up: in a container, its address on the compose
// network. nil if there is none.
func firstIPv4(ifaces []iface) net.IP {
	for _, ifc := range ifaces {
		if ifc.flags&net.FlagUp == 0 || ifc.flags&net.FlagLoopback != 0 {
			continue
		}
		for _, a := range ifc.addrs {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			ip4 := ip.To4()
			if ip4 == nil || ip4.IsLoopback() || ip4.IsLinkLocalUnicast() || ip4.IsUnspecified() {
				continue
			}
			return ip4
		}
	}
	return nil
}

// registration is where and as what a replica registers with legate-cp.
type registration struct {
	base      string // legate-cp's HTTP address, e.g. http://127.0.0.1:18001
	service   string
	id        string
	host      string
	port      int
	ttl       time.Duration
	client    *http.Client
	logger    *log.Logger
	retryWait time.Duration
}

// newRegistration checks the registration flags. advertise defaults to the
// bound address when that is a specific IP.
func newRegistration(cfg config, bound net.Addr, logger *log.Logger) (*registration, error) {
	base := strings.TrimSuffix(cfg.register, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if u, err := url.Parse(base); err != nil || u.Host == "" {
		return nil, fmt.Errorf("--register %q: want legate-cp's HTTP address, e.g. http://127.0.0.1:18001", cfg.register)
	}
	adv := cfg.advertise
	if adv == "" {
		tcp, ok := bound.(*net.TCPAddr)
		if !ok {
			return nil, fmt.Errorf("--advertise is required when listening on %s", bound)
		}
		adv = tcp.String()
		if tcp.IP.IsUnspecified() {
			// A wildcard listener in a container: its own address is the
			// one to register, so each scaled replica registers itself.
			ifaces, err := interfaces()
			if err != nil {
				return nil, fmt.Errorf("--advertise: listing interfaces: %w", err)
			}
			ip := firstIPv4(ifaces)
			if ip == nil {
				return nil, fmt.Errorf("--advertise is required when listening on %s: no interface has a non-loopback IPv4 address", bound)
			}
			adv = net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
		}
	}
	host, portStr, err := net.SplitHostPort(adv)
	if err != nil {
		return nil, fmt.Errorf("--advertise %q: %w", adv, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("--advertise %q: bad port", adv)
	}
	if cfg.ttl < time.Second {
		return nil, fmt.Errorf("--ttl %v: must be at least 1s", cfg.ttl)
	}
	return &registration{
		base: base, service: cfg.service, id: cfg.instanceID, host: host, port: port, ttl: cfg.ttl,
		client: &http.Client{Timeout: 5 * time.Second}, logger: logger, retryWait: time.Second,
	}, nil
}

func (r *registration) instanceURL() string {
	return r.base + "/v1/services/" + url.PathEscape(r.service) + "/instances/" + url.PathEscape(r.id)
}

// put (re-)registers the instance.
func (r *registration) put(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{
		"address": r.host, "port": r.port, "ttl": r.ttl.String(),
		"metadata": map[string]any{"hostname": r.id},
	})
	_, err := r.do(ctx, http.MethodPut, r.instanceURL(), body)
	return err
}

// do sends a request and returns its status; a status other than 2xx is an
// error carrying legate-cp's message.
func (r *registration) do(ctx context.Context, method, u string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, bytes.TrimSpace(msg))
	}
	return resp.StatusCode, nil
}

// errUnknown marks a heartbeat for an instance legate-cp does not know
// (it restarted, or the lease ran out): the caller registers again.
var errUnknown = errors.New("instance unknown to legate-cp")

func (r *registration) heartbeat(ctx context.Context) error {
	code, err := r.do(ctx, http.MethodPut, r.instanceURL()+"/heartbeat", nil)
	if code == http.StatusNotFound {
		return errUnknown
	}
	return err
}

// run registers, then heartbeats every ttl/3 until ctx ends, registering
// again whenever legate-cp has forgotten the instance (it persists
// nothing). Failures are logged and retried; they never stop the service.
func (r *registration) run(ctx context.Context) {
	registered := false
	for {
		var err error
		if registered {
			err = r.heartbeat(ctx)
			if errors.Is(err, errUnknown) {
				r.logger.Printf("legate-cp no longer knows %s/%s; registering again", r.service, r.id)
				registered = false
			}
		}
		if !registered {
			if err = r.put(ctx); err == nil {
				registered = true
				r.logger.Printf("registered %s/%s at %s with legate-cp %s (ttl %v)", r.service, r.id, net.JoinHostPort(r.host, strconv.Itoa(r.port)), r.base, r.ttl)
			}
		}
		wait := r.ttl / 3
		if err != nil && ctx.Err() == nil {
			r.logger.Printf("registration: %v", err)
			wait = min(wait, r.retryWait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// deregister removes the instance, so traffic stops before the process
// exits rather than when its lease runs out.
func (r *registration) deregister() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	code, err := r.do(ctx, http.MethodDelete, r.instanceURL(), nil)
	if code == http.StatusNotFound {
		return nil
	}
	return err
}

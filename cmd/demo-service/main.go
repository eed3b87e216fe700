// Command demo-service is the upstream of Legate's front-proxy case study.
//
// It answers GET /service/{id} with a small JSON document naming the replica
// that served it, so that requests sent through the proxy show which host the
// load balancer picked:
//
//	{"hostname":"service1-a","ip":"127.0.0.11","serviceid":"1","success":true,"time":"2021-10-22 18:05:12"}
//
// A request for another service id gets 404 with "success": false. GET /healthz
// answers 200 for readiness probes.
//
// With --register it registers itself with legate-cp's service registry
// (as --service/--instance-id at --advertise), heartbeats every --ttl/3, and
// deregisters on SIGTERM before it stops serving. Listening on 0.0.0.0
// without --advertise, it registers its first non-loopback IPv4 address, so
// each replica of a scaled container service registers its own.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// timeLayout matches the "2021-10-22 18:05:12" form of the case study.
const timeLayout = "2006-01-02 15:04:05"

// config is what a replica needs to know about itself.
type config struct {
	listen    string
	serviceID string
	hostname  string
	now       func() time.Time

	// Registration with legate-cp; register is empty when off.
	register   string
	service    string
	instanceID string
	advertise  string
	ttl        time.Duration
}

// reply is the JSON body; field order follows the case study's output.
type reply struct {
	Hostname  string `json:"hostname"`
	IP        string `json:"ip"`
	ServiceID string `json:"serviceid"`
	Success   bool   `json:"success"`
	Time      string `json:"time"`
	Error     string `json:"error,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "demo-service:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx is done, then shuts down gracefully.
// If ready is non-nil it receives the bound address once the socket listens
// (tests use it with --listen 127.0.0.1:0).
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- net.Addr) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.listen, err)
	}
	logger := log.New(stderr, "demo-service["+cfg.hostname+"] ", log.LstdFlags)
	srv := &http.Server{
		Handler:           newHandler(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          logger,
	}
	logger.Printf("service %s listening on %s", cfg.serviceID, ln.Addr())
	var reg *registration
	if cfg.register != "" {
		if reg, err = newRegistration(cfg, ln.Addr(), logger); err != nil {
			ln.Close()
			return err
		}
	}
	if ready != nil {
		ready <- ln.Addr()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan struct{})
	go func() {
		defer close(regDone)
		if reg != nil {
			reg.run(regCtx)
		}
	}()
	select {
	case err := <-errc:
		stopReg()
		<-regDone
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stopReg()
	<-regDone
	if reg != nil {
		// Deregister first: the proxy stops sending new requests here
		// while the ones in flight finish below.
		if err := reg.deregister(); err != nil {
			logger.Printf("deregister: %v", err)
		} else {
			logger.Printf("deregistered %s/%s", reg.service, reg.id)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("demo-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{now: time.Now}
	fs.StringVar(&cfg.listen, "listen", "0.0.0.0:8080", "address to serve on")
	fs.StringVar(&cfg.serviceID, "service-id", os.Getenv("SERVICE_ID"), "the id this service answers to in /service/{id} (default $SERVICE_ID)")
	fs.StringVar(&cfg.hostname, "name", "", "hostname to report (default os.Hostname); lets replicas on one machine differ")
	fs.StringVar(&cfg.register, "register", "", "legate-cp's HTTP address (e.g. http://127.0.0.1:18001): register this replica in its service registry")
	fs.StringVar(&cfg.service, "service", "", "service name to register under (default service<service-id>)")
	fs.StringVar(&cfg.instanceID, "instance-id", "", "instance id to register as (default the --name)")
	fs.StringVar(&cfg.advertise, "advertise", "", "ip:port to register (default the --listen address; for 0.0.0.0 or [::], the first non-loopback IPv4 address of an interface, with the --listen port)")
	fs.DurationVar(&cfg.ttl, "ttl", 10*time.Second, "registration lease; heartbeats are sent every ttl/3")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.serviceID == "" {
		return config{}, errors.New("--service-id (or SERVICE_ID) is required")
	}
	if cfg.hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return config{}, fmt.Errorf("hostname: %w", err)
		}
		cfg.hostname = h
	}
	if cfg.service == "" {
		cfg.service = "service" + cfg.serviceID
	}
	if cfg.instanceID == "" {
		cfg.instanceID = cfg.hostname
	}
	return cfg, nil
}

func newHandler(cfg config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /service/{id}", func(w http.ResponseWriter, r *http.Request) {
		rep := reply{
			Hostname:  cfg.hostname,
			IP:        localIP(r),
			ServiceID: cfg.serviceID,
			Success:   true,
			Time:      cfg.now().Format(timeLayout),
		}
		status := http.StatusOK
		if id := r.PathValue("id"); id != cfg.serviceID {
			status = http.StatusNotFound
			rep.Success = false
			rep.Error = fmt.Sprintf("this is service %s, not service %s", cfg.serviceID, id)
		}
		writeJSON(w, status, rep)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "hostname": cfg.hostname})
	})
	return mux
}

// localIP is the address the request arrived on, which is the replica's own
// IP even when it listens on 0.0.0.0.
func localIP(r *http.Request) string {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return ""
	}
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Command legate-cp is a small xDS management server for Legate (and Envoy).
//
// It serves listeners, routes, clusters, load assignments and secrets over
// ADS and the per-type discovery services, state-of-the-world and delta,
// from a directory of Envoy-format resource files (--resources) or, without
// one, from an embedded default: the front-proxy case study with EDS
// clusters service1 and service2. Instances register over HTTP and become
// those clusters' endpoints. See docs/control-plane.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/legate-proxy/legate/internal/logging"
	"github.com/legate-proxy/legate/internal/tooling/controlplane"
	"github.com/legate-proxy/legate/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "legate-cp:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, if set, receives the server once it
// listens (tests use it with port 0).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- *controlplane.Server) error {
	fs := flag.NewFlagSet("legate-cp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o controlplane.Options
	var logLevel string
	var showVersion bool
	fs.StringVar(&o.XDSAddress, "xds-address", "127.0.0.1:18000", "address of the gRPC xDS server (ADS, LDS, CDS, RDS, EDS, SDS; SotW and delta)")
	fs.StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:18001", "address of the HTTP service registry and read-only API")
	fs.StringVar(&o.ResourcesDir, "resources", "", "directory of Envoy-format resource files (*.yaml, *.yml, *.json), re-read on change; default: the embedded front-proxy resources")
	fs.IntVar(&o.ListenPort, "listen-port", 10000, "port of the embedded default's listener (ignored with --resources)")
	fs.DurationVar(&o.PollInterval, "poll-interval", time.Second, "how often --resources is checked for changes")
	fs.StringVar(&logLevel, "log-level", "info", "trace, debug, info, warning, error, critical or off")
	fs.StringVar(&logLevel, "l", "info", "shorthand for --log-level")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if showVersion {
		fmt.Fprintf(stdout, "legate-cp version %s\n", version.Version)
		return nil
	}
	if o.ListenPort < 1 || o.ListenPort > 65535 {
		return fmt.Errorf("--listen-port %d: want 1 to 65535", o.ListenPort)
	}
	level, err := logging.ParseLevel(logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	srv, err := controlplane.Start(ctx, o)
	if err != nil {
		return err
	}
	if ready != nil {
		ready <- srv
	}
	<-srv.Done()
	o.Logger.Info("legate-cp stopping")
	return srv.Close()
}

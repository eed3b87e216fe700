// Command legate is an Envoy-compatible proxy. Its flags follow Envoy's:
//
//	legate -c envoy.yaml [--config-yaml '...'] [--mode serve|validate]
//	       [-l info] [--concurrency N] [--service-node ID]
//	       [--service-cluster NAME] [--drain-time-s 600] [--version]
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
	"runtime"
	"strings"
	"syscall"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/legate-proxy/legate/internal/bootstrap"
	"github.com/legate-proxy/legate/internal/logging"
	"github.com/legate-proxy/legate/internal/server"
	"github.com/legate-proxy/legate/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	configPath, configYAML, mode, logLevel string
	serviceNode, serviceCluster            string
	concurrency, drainTimeS                int
	showVersion                            bool
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("legate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Go's flag package accepts -name and --name alike, so each Envoy flag
	// is one definition; short forms are aliases.
	fs.StringVar(&f.configPath, "config-path", "", "path to an Envoy v3 bootstrap (YAML or JSON)")
	fs.StringVar(&f.configPath, "c", "", "shorthand for --config-path")
	fs.StringVar(&f.configYAML, "config-yaml", "", "bootstrap YAML merged over --config-path")
	fs.StringVar(&f.mode, "mode", "serve", "serve, or validate (check the config, bind nothing)")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warning, error, critical, off")
	fs.StringVar(&f.logLevel, "l", "info", "shorthand for --log-level")
	fs.IntVar(&f.concurrency, "concurrency", 0, "worker threads (sets GOMAXPROCS; default: all CPUs)")
	fs.StringVar(&f.serviceNode, "service-node", "", "node id (overrides node.id)")
	fs.StringVar(&f.serviceCluster, "service-cluster", "", "node cluster (overrides node.cluster)")
	fs.IntVar(&f.drainTimeS, "drain-time-s", 600, "seconds to let in-flight requests finish on shutdown")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if f.mode != "serve" && f.mode != "validate" {
		return nil, fmt.Errorf("--mode: %q is not supported (want serve or validate)", f.mode)
	}
	if f.concurrency < 0 || f.drainTimeS < 0 {
		return nil, errors.New("--concurrency and --drain-time-s must not be negative")
	}
	return f, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "legate:", err)
		return 1
	}
	if f.showVersion {
		fmt.Fprintln(stdout, version.String())
		return 0
	}
	level, err := logging.ParseLevel(f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "legate: --log-level:", err)
		return 1
	}
	var lv slog.LevelVar
	lv.Set(level)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &lv}))
	if f.concurrency > 0 {
		runtime.GOMAXPROCS(f.concurrency)
	}

	bs, err := bootstrap.LoadWithProblems(bootstrap.Options{ConfigPath: f.configPath, ConfigYAML: f.configYAML})
	if err != nil {
		var reported bootstrap.Errors
		if !errors.As(err, &reported) {
			reported = bootstrap.Errors{err}
		}
		reported = append(reported, laterProblems(bs, reported)...)
		if f.mode == "validate" && bs != nil {
			reported = append(reported, bootstrap.CheckFileSources(bs)...)
		}
		printErrors(stderr, reported)
		return 1
	}
	srv, err := server.New(server.Options{
		Bootstrap:      bs,
		ServiceNode:    f.serviceNode,
		ServiceCluster: f.serviceCluster,
		DrainTime:      time.Duration(f.drainTimeS) * time.Second,
		Concurrency:    runtime.GOMAXPROCS(0),
		Logger:         logger,
		LogLevel:       &lv,
	})
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if f.mode == "validate" {
		srv.Close()
		// A server reads xDS files once running, and refuses a bad one
		// without stopping; validation reads them now.
		if errs := bootstrap.CheckFileSources(bs); len(errs) > 0 {
			printErrors(stderr, errs)
			return 1
		}
		fmt.Fprintf(stdout, "configuration '%s' OK\n", configName(f))
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger.Info("starting legate", "version", version.Version, "commit", version.Commit, "concurrency", runtime.GOMAXPROCS(0))
	if err := srv.Run(ctx); err != nil {
		logger.Error("server failed", "err", err)
		return 1
	}
	return 0
}

// laterProblems builds a bootstrap that has problems already, to report
// in the same run what only building finds (unknown clusters, bad regular
// expressions, duplicate names), minus what concerns the parts already
// reported. The builder assumes a checked bootstrap; should it trip over
// one that is not, only the first stage's problems are reported.
func laterProblems(bs *bootstrapv3.Bootstrap, reported bootstrap.Errors) (out bootstrap.Errors) {
	if bs == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	srv, err := server.New(server.Options{Bootstrap: bs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		srv.Close()
		return nil
	}
	for _, e := range bootstrap.Flatten(err) {
		if !bootstrap.Covered(e, reported) {
			out = append(out, e)
		}
	}
	return out
}

func configName(f *flags) string {
	if f.configPath != "" {
		return f.configPath
	}
	return "--config-yaml"
}

// printErrors prints each configuration problem on its own line; the
// bootstrap and server report every problem, one per line.
func printErrors(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintln(w, "error:", line)
		}
	}
}

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

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/legate-proxy/legate/internal/bootstrap"
	"github.com/legate-proxy/legate/internal/logging"
	"github.com/legate-proxy/legate/internal/server"
	"github.com/legate-proxy/legate/internal/version"
	"google.golang.org/protobuf/types/known/durationpb"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	configPath, configYAML, mode, logLevel string
	serviceNode, serviceCluster            string
	concurrency, drainTimeS                int
	showVersion                            bool

	logPath, logFormat, componentLogLevel string
	serviceZone, drainStrategy            string
	baseID                                uint64
	restartEpoch, parentShutdownTimeS     int
	disableHotRestart                     bool
	allowUnknownStaticFields              bool
	rejectUnknownDynamicFields            bool
}

// modes are Envoy's --mode values.
var modes = map[string]adminv3.CommandLineOptions_Mode{
	"serve":     adminv3.CommandLineOptions_Serve,
	"validate":  adminv3.CommandLineOptions_Validate,
	"init_only": adminv3.CommandLineOptions_InitOnly,
}

func parseFlags(args []string, stdout, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("legate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Go's flag package accepts -name and --name alike, so each Envoy flag
	// is one definition; short forms are aliases.
	fs.StringVar(&f.configPath, "config-path", "", "path to an Envoy v3 bootstrap (YAML or JSON)")
	fs.StringVar(&f.configPath, "c", "", "shorthand for --config-path")
	fs.StringVar(&f.configYAML, "config-yaml", "", "bootstrap YAML merged over --config-path")
	fs.StringVar(&f.mode, "mode", "serve", "serve; validate (check the config and the xDS files it names, bind nothing); init_only (initialize, bind, then exit)")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warning, error, critical, off")
	fs.StringVar(&f.logLevel, "l", "info", "shorthand for --log-level")
	fs.StringVar(&f.componentLogLevel, "component-log-level", "", "component levels, e.g. upstream:debug,config:trace (components: "+strings.Join(logging.Components, ", ")+")")
	fs.StringVar(&f.logPath, "log-path", "", "write logs to this file (reopened on SIGUSR1 and /reopen_logs) instead of stderr")
	fs.StringVar(&f.logFormat, "log-format", "", "log line format in Envoy's flags, e.g. \"[%Y-%m-%d %T.%e][%t][%l][%n] %v\" (default: key=value lines)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "worker threads (sets GOMAXPROCS; default: all CPUs)")
	fs.StringVar(&f.serviceNode, "service-node", "", "node id (overrides node.id)")
	fs.StringVar(&f.serviceCluster, "service-cluster", "", "node cluster (overrides node.cluster)")
	fs.StringVar(&f.serviceZone, "service-zone", "", "node zone (overrides node.locality.zone)")
	fs.IntVar(&f.drainTimeS, "drain-time-s", 600, "seconds to let in-flight requests finish on shutdown")
	fs.StringVar(&f.drainStrategy, "drain-strategy", "immediate", "immediate: every connection is asked to finish at once when draining starts (gradual is not supported)")
	fs.Uint64Var(&f.baseID, "base-id", 0, "hot restart domain; Legate has no hot restart, so only reported in /server_info")
	fs.IntVar(&f.restartEpoch, "restart-epoch", 0, "hot restart epoch; Legate has no hot restart: every epoch starts on its own, taking over no parent's sockets")
	fs.BoolVar(&f.disableHotRestart, "disable-hot-restart", false, "disable hot restart (Legate has none: always in effect)")
	fs.IntVar(&f.parentShutdownTimeS, "parent-shutdown-time-s", 900, "hot restart: when to stop the parent; Legate has no hot restart, so only reported in /server_info")
	fs.BoolVar(&f.allowUnknownStaticFields, "allow-unknown-static-fields", false, "unknown fields in the bootstrap are warnings, not errors")
	fs.BoolVar(&f.rejectUnknownDynamicFields, "reject-unknown-dynamic-fields", false, "refuse xDS resources with fields unknown to Legate (default: ignored, as in Envoy)")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	// Usage goes to stdout when asked for (-h, --help), as Envoy's does;
	// after a parse error only the error is printed, to stderr.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "Usage: legate -c <config> [flags]  (Envoy's command line)")
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if _, ok := modes[f.mode]; !ok {
		return nil, fmt.Errorf("--mode: %q is not supported (want serve, validate or init_only)", f.mode)
	}
	switch f.drainStrategy {
	case "immediate":
	case "gradual":
		return nil, errors.New("--drain-strategy: gradual is not supported; Legate drains immediately (every connection is asked to finish at once)")
	default:
		return nil, fmt.Errorf("--drain-strategy: %q is not a strategy (want immediate)", f.drainStrategy)
	}
	if f.concurrency < 0 || f.drainTimeS < 0 || f.restartEpoch < 0 || f.parentShutdownTimeS < 0 {
		return nil, errors.New("--concurrency, --drain-time-s, --restart-epoch and --parent-shutdown-time-s must not be negative")
	}
	return f, nil
}

// commandLine is the command line for /server_info.
func (f *flags) commandLine() *adminv3.CommandLineOptions {
	return &adminv3.CommandLineOptions{
		Mode:                       modes[f.mode],
		LogPath:                    f.logPath,
		LogFormat:                  f.logFormat,
		ComponentLogLevel:          f.componentLogLevel,
		BaseId:                     f.baseID,
		RestartEpoch:               uint32(f.restartEpoch),
		DisableHotRestart:          true,
		ParentShutdownTime:         durationpb.New(time.Duration(f.parentShutdownTimeS) * time.Second),
		DrainStrategy:              adminv3.CommandLineOptions_Immediate,
		AllowUnknownStaticFields:   f.allowUnknownStaticFields,
		RejectUnknownDynamicFields: f.rejectUnknownDynamicFields,
	}
}

// logger builds the logger the flags ask for. closeLog closes a
// --log-path file; reopen reopens it (nil without one).
func (f *flags) logger(stderr io.Writer) (logger *slog.Logger, levels *logging.Levels, reopen func() error, closeLog func(), err error) {
	level, err := logging.ParseLevel(f.logLevel)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	levels = logging.NewLevels(level)
	if err := levels.ParseComponentLevels(f.componentLogLevel); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("--component-log-level: %w", err)
	}
	out, closeLog := stderr, func() {}
	if f.logPath != "" {
		lf, err := logging.OpenFile(f.logPath)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("--log-path: %w", err)
		}
		out, reopen, closeLog = lf, lf.Reopen, func() { lf.Close() }
	}
	var h slog.Handler
	if f.logFormat != "" {
		if h, err = logging.NewFormatHandler(out, f.logFormat); err != nil {
			closeLog()
			return nil, nil, nil, nil, fmt.Errorf("--log-format: %w", err)
		}
	} else {
		h = slog.NewTextHandler(out, &slog.HandlerOptions{Level: logging.LevelTrace})
	}
	return slog.New(levels.NewHandler(h)), levels, reopen, closeLog, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stdout, stderr)
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
	logger, levels, reopenLog, closeLog, err := f.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "legate:", err)
		return 1
	}
	defer closeLog()
	if f.concurrency > 0 {
		runtime.GOMAXPROCS(f.concurrency)
	}
	if f.restartEpoch > 0 {
		logger.Info("hot restart is not implemented: this epoch starts on its own and takes over no parent's sockets", "restart_epoch", f.restartEpoch)
	}
	bootstrap.SetRejectUnknownDynamicFields(f.rejectUnknownDynamicFields)

	var unknownStatic uint64 // fields ignored by --allow-unknown-static-fields
	bs, err := bootstrap.LoadWithProblems(bootstrap.Options{
		ConfigPath: f.configPath, ConfigYAML: f.configYAML,
		AllowUnknownFields: f.allowUnknownStaticFields,
		Warn: func(msg string) {
			unknownStatic++
			logger.Warn(msg)
		},
	})
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
		ServiceZone:    f.serviceZone,
		DrainTime:      time.Duration(f.drainTimeS) * time.Second,
		Concurrency:    runtime.GOMAXPROCS(0),
		Logger:         logger,
		LogLevel:       levels.Var("main"),
		LogLevels:      levels,
		ReopenLog:      reopenLog,
		CommandLine:    f.commandLine(),
	})
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	// Envoy's count of the unknown fields it ignored in the bootstrap.
	srv.Stats().Counter("server.static_unknown_fields").Add(unknownStatic)
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
	if f.mode == "init_only" {
		// Initialize as serving does (bind, resolve, fetch xDS, warm),
		// then drain at once and exit.
		ctx = untilLive(ctx, srv)
	}
	logger.Info("starting legate", "version", version.Version, "commit", version.Commit, "concurrency", runtime.GOMAXPROCS(0))
	if err := srv.Run(ctx); err != nil {
		logger.Error("server failed", "err", err)
		return 1
	}
	return 0
}

// untilLive is ctx, also cancelled once srv is live (--mode init_only).
func untilLive(ctx context.Context, srv *server.Server) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for srv.State() != server.Live {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		cancel()
	}()
	return ctx
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

// Package accesslog implements Envoy's access loggers (file, stdout,
// stderr) and access log filters for the HTTP connection manager, the TCP
// proxy and listeners.
//
// Configuration compiles into Loggers: immutable values holding compiled
// filters and formats and a pointer to a shared, buffered writer per
// destination (see FileManager). Log runs on the request's goroutine after
// the response: it evaluates filters, formats the line into a pooled
// buffer and copies it into the destination's bounded buffer. It never
// waits for I/O; a full buffer drops the line and counts it.
package accesslog

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	grpcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	otelv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Deps is what building loggers needs.
type Deps struct {
	// Stats is the server's store. File stats are kept by Files; Stats is
	// for loggers with stats of their own (none yet) and may be nil.
	Stats *stats.Store
	// Runtime resolves filters' runtime keys; nil means defaults.
	Runtime *runtime.Snapshot
	// Files owns the destinations. Required when there is any logger.
	Files *FileManager
	// Logger receives configuration warnings; nil discards them.
	Logger *slog.Logger
	// Clusters resolves the envoy_grpc services of gRPC access loggers
	// (nil: none can be configured).
	Clusters *cluster.Manager
	// NodeID and ClusterName identify this proxy to access log services.
	NodeID, ClusterName string
}

// Loggers is a compiled access_log list. A nil Loggers logs nothing and
// costs one length check.
type Loggers []*Logger

// Logger is one compiled AccessLog.
type Logger struct {
	name   string
	filter filter // nil: log everything
	format lineFormat
	sink   *sink
	// remote, when set, replaces format and sink: the entry goes to a
	// gRPC service.
	remote entryLogger
}

// Name is the AccessLog's name (a label).
func (l *Logger) Name() string { return l.name }

// Extension types, by proto full name.
const (
	TypeFile   = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
	TypeStdout = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	TypeStderr = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
)

// New compiles access_log entries. Nil or empty input returns nil Loggers.
// Errors name the entry and field, e.g. "access_log[1].typed_config.path:
// open /x/y: no such file or directory": as in Envoy, a file that cannot
// be opened fails the configuration (later write and reopen failures are
// only counted and reported).
func New(pbs []*accesslogv3.AccessLog, deps Deps) (Loggers, error) {
	if len(pbs) == 0 {
		return nil, nil
	}
	if deps.Files == nil {
		return nil, errors.New("access_log: no file manager to write with")
	}
	out := make(Loggers, 0, len(pbs))
	for i, pb := range pbs {
		l, err := newLogger(pb, deps, fmt.Sprintf("access_log[%d]", i))
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func newLogger(pb *accesslogv3.AccessLog, deps Deps, path string) (*Logger, error) {
	l := &Logger{name: pb.GetName()}
	if pb.GetFilter() != nil {
		f, err := compileFilter(pb.GetFilter(), deps.Runtime, path+".filter")
		if err != nil {
			return nil, err
		}
		l.filter = f
	}
	tcfg := pb.GetTypedConfig()
	if tcfg == nil {
		return nil, fmt.Errorf("%s.typed_config: required (a file, stdout, stderr, gRPC or OpenTelemetry access logger)", path)
	}
	msg, err := tcfg.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("%s.typed_config: %w", path, err)
	}
	tc := path + ".typed_config"
	switch c := msg.(type) {
	case *filev3.FileAccessLog:
		if l.format, err = compileFileFormat(c, tc); err != nil {
			return nil, err
		}
		if l.sink, err = deps.Files.file(c.GetPath()); err != nil {
			return nil, fmt.Errorf("%s.path: %w", tc, err)
		}
	case *streamv3.StdoutAccessLog:
		if l.format, err = compileSubstitution(c.GetLogFormat(), tc+".log_format"); err != nil {
			return nil, err
		}
		if l.sink, err = deps.Files.stream(false); err != nil {
			return nil, fmt.Errorf("%s: %w", tc, err)
		}
	case *streamv3.StderrAccessLog:
		if l.format, err = compileSubstitution(c.GetLogFormat(), tc+".log_format"); err != nil {
			return nil, err
		}
		if l.sink, err = deps.Files.stream(true); err != nil {
			return nil, fmt.Errorf("%s: %w", tc, err)
		}
	case *grpcv3.HttpGrpcAccessLogConfig:
		if l.remote, err = compileHTTPGrpc(c, deps, tc); err != nil {
			return nil, err
		}
	case *otelv3.OpenTelemetryAccessLogConfig:
		if l.remote, err = compileOTel(c, deps, tc); err != nil {
			return nil, err
		}
	case *grpcv3.TcpGrpcAccessLogConfig:
		if l.remote, err = compileTCPGrpc(c, deps, tc); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: access logger type %s is not supported", tc, proto.MessageName(msg))
	}
	return l, nil
}

// lineBufs are scratch buffers for formatting; the line is copied into
// the sink's buffer, so the scratch is returned at once.
var lineBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// maxPooledLine keeps one huge line from pinning a huge buffer in the pool.
const maxPooledLine = 64 << 10

// Log writes ctx to every logger whose filter accepts it. Call it once per
// request (or connection) after the response has completed; ctx and what
// it points to are not retained, so the caller may reuse them as soon as
// Log returns. Safe for concurrent use.
func (ls Loggers) Log(ctx *formatter.Context) {
	if len(ls) == 0 {
		return
	}
	if ctx == nil {
		ctx = &formatter.Context{}
	}
	bp := lineBufs.Get().(*[]byte)
	for _, l := range ls {
		if l.filter != nil && !l.filter.match(ctx) {
			continue
		}
		if l.remote != nil {
			l.remote.log(ctx)
			continue
		}
		b := l.format.appendLine((*bp)[:0], ctx)
		l.sink.write(b)
		*bp = b
	}
	if cap(*bp) <= maxPooledLine {
		*bp = (*bp)[:0]
		lineBufs.Put(bp)
	}
}

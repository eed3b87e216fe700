// Package admin serves Envoy's administration interface (/ready, /stats,
// /clusters, /config_dump, …) on net/http. It is off the request path, so
// it favours clarity over speed. Everything it shows or changes comes in
// through Deps, so it does not depend on the server package.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/stats"
)

// Logger is one named logger and its level, for /logging.
type Logger struct {
	Name  string
	Level string
}

// Deps is what the admin needs from the server. Any nil func disables the
// endpoint's action (the endpoint answers 501 where it cannot do without).
type Deps struct {
	Store       *stats.Store
	ServerStats *stats.ServerStats  // Refresh()ed before stats render; optional
	Tags        *stats.TagExtractor // for /stats/prometheus; nil = shared default

	// State reports the server's state for /ready and /server_info; when
	// nil, Ready is consulted (true = LIVE, false = PRE_INITIALIZING); when
	// both are nil the server is LIVE.
	State func() stats.ServerState
	Ready func() bool
	// StartTime fills ServerInfo's uptimes when ServerInfo leaves them unset.
	StartTime time.Time

	// Clusters and Listeners write their own text (Envoy's
	// "cluster::host:port::stat::value" lines) or JSON.
	Clusters  func(w io.Writer, json bool)
	Listeners func(w io.Writer, json bool)
	// ConfigDump returns the dump, an *adminv3.ConfigDump in Envoy's order
	// (bootstrap, clusters, endpoints, listeners, routes, secrets) for
	// ?resource=, ?mask= and ?name_regex= to work. includeEDS is
	// ?include_eds: an EndpointsConfigDump is wanted; one returned
	// without it is left out of the answer.
	ConfigDump func(includeEDS bool) (proto.Message, error)
	// ServerInfo returns version, node, command line options, … ; State and
	// uptimes are filled in here when unset.
	ServerInfo func() *adminv3.ServerInfo

	SetHealthFailed func(failed bool)
	Quit            func()
	// SetLogLevel changes one logger, or all when logger is "". level is
	// one of trace, debug, info, warning, error, critical, off.
	SetLogLevel func(logger, level string) error
	Loggers     func() []Logger
	// ReopenLogs reopens the access log files (POST /reopen_logs, for log
	// rotation); nil when there are none to reopen.
	ReopenLogs func() error

	// ProfilePath is admin.profile_path, where /cpuprofiler and
	// /heapprofiler write; empty disables both.
	ProfilePath string

	// Dashboard, when set, serves the home page "/" and everything under
	// "/dashboard/" (internal/admin/dashboard); the endpoint index then
	// lives at /help, as HTML for browsers. Nil keeps the plain index at "/".
	Dashboard http.Handler
}

type endpoint struct {
	path    string
	help    string
	mutates bool
	params  []string // "name: help"
	handle  func(w http.ResponseWriter, r *http.Request)
}

type server struct {
	deps      Deps
	endpoints []endpoint
	byPath    map[string]*endpoint
	prof      profiler
}

// New returns the admin handler.
func New(deps Deps) http.Handler {
	s := &server{deps: deps}
	s.endpoints = []endpoint{
		{path: "/", help: "Admin home page", handle: s.home},
		{path: "/help", help: "print out list of admin commands", handle: s.helpPage},
		{path: "/ready", help: "print server state, return 200 if LIVE, otherwise return 503", handle: s.ready},
		{path: "/stats", help: "print server stats", handle: s.stats, params: []string{
			"usedonly: only include stats that have been written", "filter: regular expression the names must match",
			"format: text (default), json or prometheus"}},
		{path: "/stats/prometheus", help: "print server stats in prometheus format", handle: s.prometheus, params: []string{
			"usedonly: only include stats that have been written", "filter: regular expression the names must match"}},
		{path: "/clusters", help: "upstream cluster status", handle: s.writerEndpoint(func() func(io.Writer, bool) { return s.deps.Clusters }),
			params: []string{"format: text (default) or json"}},
		{path: "/listeners", help: "print listener info", handle: s.writerEndpoint(func() func(io.Writer, bool) { return s.deps.Listeners }),
			params: []string{"format: text (default) or json"}},
		{path: "/config_dump", help: "dump current Legate configs", handle: s.configDump, params: []string{
			"resource: the repeated field to list the elements of, e.g. static_clusters or dynamic_active_clusters",
			"mask: comma-separated field paths to keep in each config (with resource: in each element, e.g. cluster.name)",
			"name_regex: dump only the resources whose name fully matches this RE2 expression",
			"include_eds: include the endpoints (EndpointsConfigDump)"}},
		{path: "/server_info", help: "print server version/status information", handle: s.serverInfo},
		{path: "/healthcheck/fail", help: "cause the server to fail health checks", mutates: true, handle: s.healthcheck(true)},
		{path: "/healthcheck/ok", help: "cause the server to pass health checks", mutates: true, handle: s.healthcheck(false)},
		{path: "/logging", help: "query/change logging levels", mutates: true, handle: s.logging, params: []string{
			"level: change all loggers to this level", "paths: name1:level1,name2:level2,… change several loggers"}},
		{path: "/quitquitquit", help: "exit the server", mutates: true, handle: s.quit},
		{path: "/reset_counters", help: "reset all counters to zero", mutates: true, handle: s.resetCounters},
		{path: "/reopen_logs", help: "reopen access logs", mutates: true, handle: s.reopenLogs},
		{path: "/cpuprofiler", help: "enable/disable the CPU profiler (a Go pprof profile at admin.profile_path)", mutates: true, handle: s.cpuProfiler, params: []string{
			"enable: enables the CPU profiler; One of (y, n)"}},
		{path: "/heapprofiler", help: "enable/disable the heap profiler (a Go pprof profile at admin.profile_path)", mutates: true, handle: s.heapProfiler, params: []string{
			"enable: enable/disable the heap profiler; One of (y, n)"}},
	}
	s.byPath = make(map[string]*endpoint, len(s.endpoints))
	for i := range s.endpoints {
		s.byPath[s.endpoints[i].path] = &s.endpoints[i]
	}
	return s
}

// Serve answers admin requests on ln until ctx ends, then lets requests in
// flight (such as the /quitquitquit that ended it) finish for up to five
// seconds.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	err := srv.Serve(ln)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, max-age=0")
	h.Set("X-Content-Type-Options", "nosniff")
	if s.deps.Dashboard != nil && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/dashboard/")) {
		s.deps.Dashboard.ServeHTTP(w, r)
		return
	}
	ep := s.byPath[r.URL.Path]
	if ep == nil {
		var b strings.Builder
		b.WriteString("invalid path. ")
		s.writeHelp(&b)
		text(w, http.StatusNotFound, b.String())
		return
	}
	if ep.mutates && r.Method != http.MethodPost {
		text(w, http.StatusMethodNotAllowed, fmt.Sprintf("Method %s not allowed, POST required.", r.Method))
		return
	}
	ep.handle(w, r)
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

func (s *server) writeHelp(b *strings.Builder) {
	b.WriteString("admin commands are:\n")
	for _, ep := range s.endpoints {
		fmt.Fprintf(b, "  %s: %s\n", ep.path, ep.help)
		for _, p := range ep.params {
			fmt.Fprintf(b, "      %s\n", p)
		}
	}
}

func (s *server) helpPage(w http.ResponseWriter, r *http.Request) {
	// With the dashboard on "/", browsers find the clickable index (with
	// POST buttons for the mutating endpoints) here; curl and scripts,
	// which do not ask for HTML, keep Envoy's text.
	if s.deps.Dashboard != nil && wantsHTML(r) {
		s.home(w, r)
		return
	}
	var b strings.Builder
	s.writeHelp(&b)
	text(w, http.StatusOK, b.String())
}

// wantsHTML reports whether the client lists text/html among the types it
// accepts, as browsers do and curl does not.
func wantsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/html") {
				return true
			}
		}
	}
	return false
}

// home is the plain endpoint index: the home page without a dashboard, and
// /help for browsers with one.
func (s *server) home(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><title>Legate Admin</title></head><body>\n<h1>Legate Admin</h1>\n")
	if s.deps.Dashboard != nil {
		b.WriteString("<p><a href=\"/\">Live dashboard</a></p>\n")
	}
	b.WriteString("<table>\n")
	for _, ep := range s.endpoints[1:] {
		p := html.EscapeString(ep.path)
		if ep.mutates {
			fmt.Fprintf(&b, "<tr><td><form action=%q method=\"post\"><button>%s</button></form></td><td>%s</td></tr>\n", p, p, html.EscapeString(ep.help))
		} else {
			fmt.Fprintf(&b, "<tr><td><a href=%q>%s</a></td><td>%s</td></tr>\n", p, p, html.EscapeString(ep.help))
		}
	}
	b.WriteString("</table>\n</body></html>\n")
	io.WriteString(w, b.String())
}

func (s *server) state() stats.ServerState {
	switch {
	case s.deps.State != nil:
		return s.deps.State()
	case s.deps.Ready != nil && !s.deps.Ready():
		return stats.StatePreInitializing
	}
	return stats.StateLive
}

func (s *server) ready(w http.ResponseWriter, _ *http.Request) {
	st := s.state()
	code := http.StatusOK
	if st != stats.StateLive {
		code = http.StatusServiceUnavailable
	}
	text(w, code, st.String()+"\n")
}

func (s *server) statsParams(w http.ResponseWriter, r *http.Request) (filter *regexp.Regexp, usedOnly, ok bool) {
	q := r.URL.Query()
	_, usedOnly = q["usedonly"]
	if f := q.Get("filter"); f != "" {
		re, err := regexp.Compile(f)
		if err != nil {
			text(w, http.StatusBadRequest, fmt.Sprintf("Invalid re2 regex: %v\n", err))
			return nil, false, false
		}
		filter = re
	}
	if s.deps.Store == nil {
		text(w, http.StatusNotImplemented, "no stats store\n")
		return nil, false, false
	}
	if s.deps.ServerStats != nil {
		s.deps.ServerStats.Refresh()
	}
	return filter, usedOnly, true
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	switch format {
	case "", "text", "json", "prometheus":
	default:
		text(w, http.StatusBadRequest, fmt.Sprintf("usage: /stats?format=(text|json|prometheus), not %q\n", format))
		return
	}
	filter, usedOnly, ok := s.statsParams(w, r)
	if !ok {
		return
	}
	switch format {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		stats.WriteJSON(w, s.deps.Store, filter, usedOnly)
	case "prometheus":
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		stats.WritePrometheus(w, s.deps.Store, s.deps.Tags, filter, usedOnly)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		stats.WriteText(w, s.deps.Store, filter, usedOnly)
	}
}

func (s *server) prometheus(w http.ResponseWriter, r *http.Request) {
	filter, usedOnly, ok := s.statsParams(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	stats.WritePrometheus(w, s.deps.Store, s.deps.Tags, filter, usedOnly)
}

func (s *server) writerEndpoint(get func() func(io.Writer, bool)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		fn := get()
		if fn == nil {
			text(w, http.StatusNotImplemented, "not available\n")
			return
		}
		asJSON := r.URL.Query().Get("format") == "json"
		if asJSON {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		}
		fn(w, asJSON)
	}
}

// Envoy prints admin protos with their proto field names, indented by one
// space.
var jsonOut = protojson.MarshalOptions{UseProtoNames: true}

func writeProto(w http.ResponseWriter, m proto.Message, opts protojson.MarshalOptions) {
	b, err := opts.Marshal(m)
	if err != nil {
		text(w, http.StatusInternalServerError, fmt.Sprintf("marshalling %s: %v\n", m.ProtoReflect().Descriptor().FullName(), err))
		return
	}
	// protojson varies its whitespace on purpose; re-indent so the output
	// is stable and reads like Envoy's.
	var out bytes.Buffer
	if json.Indent(&out, b, "", " ") != nil {
		out.Reset()
		out.Write(b)
	}
	w.Header().Set("Content-Type", "application/json")
	out.WriteByte('\n')
	w.Write(out.Bytes())
}

func (s *server) configDump(w http.ResponseWriter, r *http.Request) {
	if s.deps.ConfigDump == nil {
		text(w, http.StatusNotImplemented, "not available\n")
		return
	}
	params := r.URL.Query()
	q := dumpQuery{resource: params.Get("resource"), includeEDS: params.Has("include_eds")}
	if params.Has("mask") {
		q.maskText = params.Get("mask")
		q.mask = parseMask(q.maskText)
	}
	if expr := params.Get("name_regex"); expr != "" {
		re, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			text(w, http.StatusBadRequest, fmt.Sprintf("Error while parsing name_regex from %s: %v\n", expr, err))
			return
		}
		q.nameRE = re
	}
	dump, err := s.deps.ConfigDump(q.includeEDS)
	if err != nil {
		text(w, http.StatusInternalServerError, err.Error()+"\n")
		return
	}
	if cd, ok := dump.(*adminv3.ConfigDump); ok {
		out, err := shapeDump(cd, q)
		var qe *queryError
		switch {
		case errors.As(err, &qe):
			text(w, qe.code, qe.msg+"\n")
			return
		case err != nil:
			text(w, http.StatusInternalServerError, err.Error()+"\n")
			return
		}
		dump = out
	} else if q.resource != "" || q.mask != nil || q.nameRE != nil {
		text(w, http.StatusBadRequest, "resource, mask and name_regex need an envoy.admin.v3.ConfigDump\n")
		return
	} else {
		dump = proto.Clone(dump)
	}
	if err := redact(dump.ProtoReflect(), false); err != nil {
		text(w, http.StatusInternalServerError, err.Error()+"\n")
		return
	}
	writeProto(w, dump, jsonOut)
}

func (s *server) serverInfo(w http.ResponseWriter, _ *http.Request) {
	info := &adminv3.ServerInfo{}
	if s.deps.ServerInfo != nil {
		if base := s.deps.ServerInfo(); base != nil {
			info = proto.Clone(base).(*adminv3.ServerInfo)
		}
	}
	info.State = adminv3.ServerInfo_State(s.state())
	if !s.deps.StartTime.IsZero() {
		up := durationpb.New(time.Since(s.deps.StartTime).Truncate(time.Second))
		if info.UptimeCurrentEpoch == nil {
			info.UptimeCurrentEpoch = up
		}
		if info.UptimeAllEpochs == nil {
			info.UptimeAllEpochs = up
		}
	}
	// Envoy prints every primitive field of server_info, so "state": "LIVE"
	// appears although it is the zero value.
	opts := jsonOut
	opts.EmitDefaultValues = true
	writeProto(w, info, opts)
}

func (s *server) healthcheck(fail bool) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if s.deps.SetHealthFailed == nil {
			text(w, http.StatusNotImplemented, "not available\n")
			return
		}
		s.deps.SetHealthFailed(fail)
		text(w, http.StatusOK, "OK\n")
	}
}

func (s *server) quit(w http.ResponseWriter, _ *http.Request) {
	text(w, http.StatusOK, "OK\n")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if s.deps.Quit != nil {
		// Asynchronously, so this response completes before shutdown
		// starts draining the admin listener.
		go s.deps.Quit()
	}
}

func (s *server) resetCounters(w http.ResponseWriter, _ *http.Request) {
	if s.deps.Store != nil {
		s.deps.Store.ResetCounters()
	}
	text(w, http.StatusOK, "OK\n")
}

// levelNames maps every name Envoy accepts to the canonical one.
var levelNames = map[string]string{
	"trace": "trace", "debug": "debug", "info": "info", "warning": "warning", "warn": "warning",
	"error": "error", "critical": "critical", "off": "off",
}

func (s *server) logging(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if len(q) > 0 {
		if err := s.changeLevels(q); err != nil {
			var b strings.Builder
			fmt.Fprintf(&b, "error: %v\n", err)
			b.WriteString("usage: /logging?<name>=<level> (change single level)\n")
			b.WriteString("usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n")
			b.WriteString("usage: /logging?level=<level> (change all levels)\n")
			b.WriteString("levels: trace debug info warning error critical off\n")
			text(w, http.StatusNotFound, b.String())
			return
		}
	}
	var b strings.Builder
	b.WriteString("active loggers:\n")
	if s.deps.Loggers != nil {
		ls := s.deps.Loggers()
		sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
		for _, l := range ls {
			fmt.Fprintf(&b, "  %s: %s\n", l.Name, l.Level)
		}
	}
	text(w, http.StatusOK, b.String())
}

func (s *server) changeLevels(q map[string][]string) error {
	type change struct{ logger, level string }
	var changes []change
	canon := func(l string) (string, error) {
		c, ok := levelNames[strings.ToLower(l)]
		if !ok {
			return "", fmt.Errorf("unknown level %q", l)
		}
		return c, nil
	}
	for key, vals := range q {
		for _, v := range vals {
			switch key {
			case "level":
				l, err := canon(v)
				if err != nil {
					return err
				}
				changes = append(changes, change{"", l})
			case "paths":
				for part := range strings.SplitSeq(v, ",") {
					name, lvl, ok := strings.Cut(part, ":")
					if !ok || name == "" {
						return fmt.Errorf("bad paths entry %q, want name:level", part)
					}
					l, err := canon(lvl)
					if err != nil {
						return err
					}
					changes = append(changes, change{name, l})
				}
			default:
				l, err := canon(v)
				if err != nil {
					return err
				}
				changes = append(changes, change{key, l})
			}
		}
	}
	if s.deps.SetLogLevel == nil {
		return errors.New("log levels cannot be changed")
	}
	// Whole-server changes first, so ?level=info&paths=x:debug leaves x
	// at debug.
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].logger == "" && changes[j].logger != "" })
	for _, c := range changes {
		if err := s.deps.SetLogLevel(c.logger, c.level); err != nil {
			return err
		}
	}
	return nil
}

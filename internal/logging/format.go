package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NewFormatHandler writes one line per record in Envoy's --log-format
// pattern language (spdlog's flags, and Envoy's %_ and %j): e.g.
// "[%Y-%m-%d %T.%e][%t][%l][%n] %v". The logger name (%n) is the record's
// component, "main" without one. Attributes follow the message as
// key=value pairs. An unknown flag is an error, as in Envoy.
func NewFormatHandler(w io.Writer, pattern string) (slog.Handler, error) {
	ops, err := compileFormat(pattern)
	if err != nil {
		return nil, err
	}
	return &formatHandler{out: &lockedWriter{w: w}, ops: ops, component: "main"}, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// fmtOp is a literal (flag 0) or one flag of the pattern.
type fmtOp struct {
	flag byte
	lit  string
}

const formatFlags = "vn_jlLtPYCymdHIMSefFpTXDRzEaAbBcrsg#!%"

func compileFormat(p string) ([]fmtOp, error) {
	var ops []fmtOp
	var lit strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			lit.WriteByte(p[i])
			continue
		}
		if i+1 >= len(p) {
			return nil, fmt.Errorf("log format %q ends in a lone %%", p)
		}
		i++
		f := p[i]
		if f == '%' {
			lit.WriteByte('%')
			continue
		}
		if !strings.ContainsRune(formatFlags, rune(f)) {
			return nil, fmt.Errorf("log format %q: unknown flag %%%c", p, f)
		}
		if lit.Len() > 0 {
			ops = append(ops, fmtOp{lit: lit.String()})
			lit.Reset()
		}
		ops = append(ops, fmtOp{flag: f})
	}
	if lit.Len() > 0 {
		ops = append(ops, fmtOp{lit: lit.String()})
	}
	return ops, nil
}

type formatHandler struct {
	out       *lockedWriter
	ops       []fmtOp
	component string
	attrs     string // pre-rendered " k=v" of WithAttrs
	group     string
}

func (h *formatHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *formatHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	nh := *h
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		if a.Key == ComponentKey {
			nh.component = a.Value.String()
			continue
		}
		writeAttr(&b, h.group, a)
	}
	nh.attrs = b.String()
	return &nh
}

func (h *formatHandler) WithGroup(name string) slog.Handler {
	nh := *h
	nh.group = h.group + name + "."
	return &nh
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, ga := range a.Value.Group() {
			writeAttr(b, group+a.Key+".", ga)
		}
		return
	}
	v := a.Value.Resolve().String()
	if strings.ContainsAny(v, " \"=\n") || v == "" {
		v = strconv.Quote(v)
	}
	b.WriteString(" " + group + a.Key + "=" + v)
}

func (h *formatHandler) Handle(_ context.Context, r slog.Record) error {
	var rest strings.Builder
	rest.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&rest, h.group, a)
		return true
	})
	msg := r.Message + rest.String()
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	var frame runtime.Frame
	if r.PC != 0 {
		frame, _ = runtime.CallersFrames([]uintptr{r.PC}).Next()
	}
	var b strings.Builder
	for _, op := range h.ops {
		switch op.flag {
		case 0:
			b.WriteString(op.lit)
		case 'v':
			b.WriteString(msg)
		case '_':
			b.WriteString(strings.ReplaceAll(msg, "\n", "\\n"))
		case 'j':
			j, _ := json.Marshal(msg)
			b.Write(j[1 : len(j)-1])
		case 'n':
			b.WriteString(h.component)
		case 'l':
			b.WriteString(LevelName(r.Level))
		case 'L':
			b.WriteString(LevelName(r.Level)[:1])
		case 't':
			b.WriteString(strconv.Itoa(threadID()))
		case 'P':
			b.WriteString(strconv.Itoa(os.Getpid()))
		case 'Y':
			b.WriteString(t.Format("2006"))
		case 'C', 'y':
			b.WriteString(t.Format("06"))
		case 'm':
			b.WriteString(t.Format("01"))
		case 'd':
			b.WriteString(t.Format("02"))
		case 'H':
			b.WriteString(t.Format("15"))
		case 'I':
			b.WriteString(t.Format("03"))
		case 'M':
			b.WriteString(t.Format("04"))
		case 'S':
			b.WriteString(t.Format("05"))
		case 'e':
			fmt.Fprintf(&b, "%03d", t.Nanosecond()/1e6)
		case 'f':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1e3)
		case 'F':
			fmt.Fprintf(&b, "%09d", t.Nanosecond())
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'T', 'X':
			b.WriteString(t.Format("15:04:05"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'R':
			b.WriteString(t.Format("15:04"))
		case 'r':
			b.WriteString(t.Format("03:04:05 PM"))
		case 'z':
			b.WriteString(t.Format("-07:00"))
		case 'E':
			b.WriteString(strconv.FormatInt(t.Unix(), 10))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'b':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'c':
			b.WriteString(t.Format("Mon Jan  2 15:04:05 2006"))
		case 's':
			b.WriteString(filepath.Base(frame.File))
		case 'g':
			b.WriteString(frame.File)
		case '#':
			b.WriteString(strconv.Itoa(frame.Line))
		case '!':
			b.WriteString(frame.Function)
		}
	}
	b.WriteByte('\n')
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := io.WriteString(h.out.w, b.String())
	return err
}

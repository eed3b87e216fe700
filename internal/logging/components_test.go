package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestComponentLevels(t *testing.T) {
	levels := NewLevels(slog.LevelInfo)
	if err := levels.ParseComponentLevels("upstream:debug, config:error"); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	h, err := NewFormatHandler(&b, "%n:%l:%v")
	if err != nil {
		t.Fatal(err)
	}
	root := slog.New(levels.NewHandler(h))
	up, cfg := root.With(ComponentKey, "upstream"), root.With(ComponentKey, "config")
	root.Debug("main debug") // main stays at info
	root.Info("main info")
	up.Debug("upstream debug", "host", "a b")
	cfg.Warn("config warn") // below error
	cfg.Error("config error")
	want := "main:info:main info\nupstream:debug:upstream debug host=\"a b\"\nconfig:error:config error\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	// /logging?level= sets every component.
	b.Reset()
	levels.SetAll(LevelTrace)
	root.Debug("now")
	if b.String() != "main:debug:now\n" {
		t.Errorf("after SetAll: %q", b.String())
	}
	if err := levels.Set("nosuch", slog.LevelInfo); err == nil {
		t.Error("unknown component accepted")
	}
	if err := levels.ParseComponentLevels("upstream"); err == nil {
		t.Error("item without level accepted")
	}
}

func TestFormatHandler(t *testing.T) {
	var b bytes.Buffer
	h, err := NewFormatHandler(&b, "[%Y-%m-%d %T.%e][%L][%n] %j %% %_")
	if err != nil {
		t.Fatal(err)
	}
	r := slog.NewRecord(time.Date(2024, 3, 5, 7, 8, 9, 123456789, time.UTC), slog.LevelWarn, "say \"hi\"\nthere", 0)
	r.AddAttrs(slog.Int("n", 1))
	if err := h.WithAttrs([]slog.Attr{slog.String(ComponentKey, "admin")}).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	want := `[2024-03-05 07:08:09.123][w][admin] say \"hi\"\nthere n=1 % say "hi"\nthere n=1` + "\n"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
	for _, bad := range []string{"%Q", "abc%"} {
		if _, err := NewFormatHandler(&b, bad); err == nil || !strings.Contains(err.Error(), "log format") {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

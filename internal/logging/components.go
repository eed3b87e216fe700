package logging

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
)

// ComponentKey is the attribute naming a logger's component, as Envoy's
// loggers are named ("upstream", "config", ...): a logger made with
// logger.With(ComponentKey, "upstream") logs at that component's level.
const ComponentKey = "component"

// Components are the component loggers Legate has, by Envoy's names:
// --component-log-level and /logging?<name>=<level> set them.
var Components = []string{"admin", "config", "connection", "filter", "http", "main", "router", "upstream"}

// Levels is the level of every component logger. -l/--log-level and
// /logging?level= set them all; --component-log-level sets some.
type Levels struct {
	byName map[string]*slog.LevelVar
}

// NewLevels starts every component at level.
func NewLevels(level slog.Level) *Levels {
	l := &Levels{byName: make(map[string]*slog.LevelVar, len(Components))}
	for _, c := range Components {
		v := new(slog.LevelVar)
		v.Set(level)
		l.byName[c] = v
	}
	return l
}

// SetAll sets every component's level.
func (l *Levels) SetAll(level slog.Level) {
	for _, v := range l.byName {
		v.Set(level)
	}
}

// Set sets one component's level; an unknown name is an error, as in Envoy.
func (l *Levels) Set(component string, level slog.Level) error {
	v := l.byName[component]
	if v == nil {
		return fmt.Errorf("unknown logger %q (loggers: %s)", component, strings.Join(Components, ", "))
	}
	v.Set(level)
	return nil
}

// Level returns a component's level.
func (l *Levels) Level(component string) slog.Level { return l.byName[component].Level() }

// Var is a component's level variable (nil for an unknown name).
func (l *Levels) Var(component string) *slog.LevelVar { return l.byName[component] }

// Names returns the component names, sorted.
func (l *Levels) Names() []string {
	out := append([]string(nil), Components...)
	sort.Strings(out)
	return out
}

// ParseComponentLevels applies Envoy's --component-log-level value, a
// comma-separated list of component:level ("upstream:debug,config:trace").
func (l *Levels) ParseComponentLevels(spec string) error {
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, lvl, ok := strings.Cut(item, ":")
		if !ok {
			return fmt.Errorf("%q: want component:level", item)
		}
		level, err := ParseLevel(lvl)
		if err != nil {
			return err
		}
		if err := l.Set(name, level); err != nil {
			return err
		}
	}
	return nil
}

// NewHandler filters records by component level before inner sees them:
// records of a logger without a component use "main". inner must let
// every level through (its own level at or below LevelTrace).
func (l *Levels) NewHandler(inner slog.Handler) slog.Handler {
	return &componentHandler{inner: inner, levels: l, level: l.byName["main"]}
}

type componentHandler struct {
	inner  slog.Handler
	levels *Levels
	level  *slog.LevelVar
}

func (h *componentHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

func (h *componentHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.inner.Handle(ctx, r)
}

func (h *componentHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	nh := &componentHandler{inner: h.inner.WithAttrs(attrs), levels: h.levels, level: h.level}
	for _, a := range attrs {
		if a.Key == ComponentKey {
			if v := h.levels.byName[a.Value.String()]; v != nil {
				nh.level = v
			}
		}
	}
	return nh
}

func (h *componentHandler) WithGroup(name string) slog.Handler {
	return &componentHandler{inner: h.inner.WithGroup(name), levels: h.levels, level: h.level}
}

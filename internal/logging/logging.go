// Package logging maps Envoy's log levels onto log/slog.
package logging

import (
	"fmt"
	"log/slog"
	"strings"
)

// Envoy's levels beyond slog's four.
const (
	LevelTrace    = slog.LevelDebug - 4
	LevelCritical = slog.LevelError + 4
	LevelOff      = slog.LevelError + 8
)

// ParseLevel accepts Envoy's level names: trace, debug, info, warning
// (warn), error, critical, off.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return LevelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "critical":
		return LevelCritical, nil
	case "off":
		return LevelOff, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want trace, debug, info, warning, error, critical or off)", s)
}

// LevelName is the Envoy name of a level.
func LevelName(l slog.Level) string {
	switch {
	case l <= LevelTrace:
		return "trace"
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= slog.LevelWarn:
		return "warning"
	case l <= slog.LevelError:
		return "error"
	case l <= LevelCritical:
		return "critical"
	}
	return "off"
}

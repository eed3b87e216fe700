package accesslog

//lint:file-ignore SA1019 FileAccessLog's format, json_format and typed_json_format are deprecated in Envoy but real configs still use them.

import (
	"errors"
	"fmt"
	"os"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"

	"github.com/legate-proxy/legate/internal/formatter"
)

// DefaultFormat is Envoy's access log format when none is configured.
const DefaultFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// lineFormat renders one access log line.
type lineFormat interface {
	appendLine(dst []byte, ctx *formatter.Context) []byte
}

// textFormat is a format string; as in Envoy, the line ends only where the
// format puts a newline.
type textFormat struct{ f *formatter.Formatter }

func (t textFormat) appendLine(dst []byte, ctx *formatter.Context) []byte {
	return t.f.Append(dst, ctx)
}

func compileText(s string, omitEmpty bool) (lineFormat, error) {
	f, err := formatter.CompileWith(s, formatter.Options{OmitEmptyValues: omitEmpty})
	if err != nil {
		return nil, err
	}
	return textFormat{f}, nil
}

var defaultFormat = func() lineFormat {
	f, err := compileText(DefaultFormat, false)
	if err != nil {
		panic(err)
	}
	return f
}()

// compileFileFormat compiles FileAccessLog's format choice; path names the
// FileAccessLog in errors.
func compileFileFormat(c *filev3.FileAccessLog, path string) (lineFormat, error) {
	switch f := c.GetAccessLogFormat().(type) {
	case nil:
		return defaultFormat, nil
	case *filev3.FileAccessLog_Format:
		if f.Format == "" {
			return defaultFormat, nil
		}
		lf, err := compileText(f.Format, false)
		if err != nil {
			return nil, fmt.Errorf("%s.format: %w", path, err)
		}
		return lf, nil
	case *filev3.FileAccessLog_JsonFormat:
		lf, err := compileJSON(f.JsonFormat, false, false)
		if err != nil {
			return nil, fmt.Errorf("%s.json_format%w", path, err)
		}
		return lf, nil
	case *filev3.FileAccessLog_TypedJsonFormat:
		lf, err := compileJSON(f.TypedJsonFormat, true, false)
		if err != nil {
			return nil, fmt.Errorf("%s.typed_json_format%w", path, err)
		}
		return lf, nil
	case *filev3.FileAccessLog_LogFormat:
		return compileSubstitution(f.LogFormat, path+".log_format")
	}
	return nil, fmt.Errorf("%s: unsupported format", path)
}

// compileSubstitution compiles a SubstitutionFormatString. A nil one means
// the default format.
func compileSubstitution(sf *corev3.SubstitutionFormatString, path string) (lineFormat, error) {
	if sf == nil {
		return defaultFormat, nil
	}
	if len(sf.GetFormatters()) > 0 {
		return nil, fmt.Errorf("%s.formatters: formatter extensions are not supported", path)
	}
	// content_type only matters to local replies; json_format_options only
	// has sort_properties, and properties are always sorted.
	omit := sf.GetOmitEmptyValues()
	switch f := sf.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		lf, err := compileText(f.TextFormat, omit)
		if err != nil {
			return nil, fmt.Errorf("%s.text_format: %w", path, err)
		}
		return lf, nil
	case *corev3.SubstitutionFormatString_TextFormatSource:
		text, err := readDataSource(f.TextFormatSource)
		if err != nil {
			return nil, fmt.Errorf("%s.text_format_source: %w", path, err)
		}
		lf, err := compileText(text, omit)
		if err != nil {
			return nil, fmt.Errorf("%s.text_format_source: %w", path, err)
		}
		return lf, nil
	case *corev3.SubstitutionFormatString_JsonFormat:
		lf, err := compileJSON(f.JsonFormat, true, omit)
		if err != nil {
			return nil, fmt.Errorf("%s.json_format%w", path, err)
		}
		return lf, nil
	}
	return nil, fmt.Errorf("%s: one of text_format, text_format_source or json_format is required", path)
}

// readDataSource reads a DataSource at config time.
func readDataSource(ds *corev3.DataSource) (string, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		return s.InlineString, nil
	case *corev3.DataSource_InlineBytes:
		return string(s.InlineBytes), nil
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return "", fmt.Errorf("filename: %w", err)
		}
		return string(b), nil
	case nil:
		return "", errors.New("one of inline_string, inline_bytes or filename is required")
	}
	return "", errors.New("only inline_string, inline_bytes and filename are supported")
}

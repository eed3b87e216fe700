// Package jsonenc appends JSON values to byte slices without reflection or
// allocation: what access logs and the formatter's metadata operators write
// on the request path. Output is compact and deterministic (object keys are
// sorted), as Envoy's is.
package jsonenc

import (
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// AppendString appends s as a quoted JSON string.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// AppendEscaped appends s escaped for the inside of a JSON string; invalid
// UTF-8 becomes U+FFFD.
func AppendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// EscapeTail JSON-escapes dst[from:] in place. The common case (printable
// ASCII without quotes or backslashes) is a scan and no copy.
func EscapeTail(dst []byte, from int) []byte {
	i := from
	for ; i < len(dst); i++ {
		c := dst[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			break
		}
	}
	if i == len(dst) {
		return dst
	}
	raw := string(dst[i:])
	return AppendEscaped(dst[:i], raw)
}

// AppendNumber appends f as protobuf's JSON does: whole numbers without a
// fraction or exponent ("10000", not "1e+04").
func AppendNumber(dst []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// AppendValue appends a google.protobuf.Value as JSON; a Value with no
// kind set is null. Struct keys are sorted.
func AppendValue(dst []byte, v *structpb.Value) []byte {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return AppendString(dst, k.StringValue)
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			// JSON has no such numbers; protobuf's JSON writes them as strings.
			return AppendString(dst, strconv.FormatFloat(k.NumberValue, 'g', -1, 64))
		}
		return AppendNumber(dst, k.NumberValue)
	case *structpb.Value_BoolValue:
		return strconv.AppendBool(dst, k.BoolValue)
	case *structpb.Value_StructValue:
		return AppendStruct(dst, k.StructValue)
	case *structpb.Value_ListValue:
		dst = append(dst, '[')
		for i, item := range k.ListValue.GetValues() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendValue(dst, item)
		}
		return append(dst, ']')
	}
	return append(dst, "null"...)
}

// AppendStruct appends a google.protobuf.Struct as a JSON object with
// sorted keys.
func AppendStruct(dst []byte, s *structpb.Struct) []byte {
	fields := s.GetFields()
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		dst = AppendValue(dst, fields[k])
	}
	return append(dst, '}')
}

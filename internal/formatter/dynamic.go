package formatter

import (
	"math"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/jsonenc"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// %DYNAMIC_METADATA(NAMESPACE:KEY*)% and %FILTER_STATE(KEY:F)%, read from
// the stream info's Dynamic: a connection's for listener and TCP proxy
// logs, a request's (which starts from its connection's) for HTTP logs.
// Nothing set, nothing allocated: the lookups are an atomic load.

// appendMetadata renders the namespace's Struct, or the value at the key
// path, as Envoy does: a string as its text, a number or bool as JSON, a
// Struct or list as compact JSON. A missing or null value is missing. The
// kind is the value's JSON type for typed logs.
func (p *part) appendMetadata(dst []byte, d *streaminfo.Dynamic) ([]byte, Kind) {
	if len(p.path) == 0 {
		st := d.Metadata(p.name)
		if st == nil {
			return dst, KindMissing
		}
		return jsonenc.AppendStruct(dst, st), KindJSON
	}
	v, ok := d.MetadataValue(p.name, p.path)
	if !ok {
		return dst, KindMissing
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return append(dst, k.StringValue...), KindString
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return jsonenc.AppendValue(dst, v), KindJSON // a quoted string
		}
		return jsonenc.AppendNumber(dst, k.NumberValue), KindNumber
	case *structpb.Value_BoolValue:
		return strconv.AppendBool(dst, k.BoolValue), KindJSON
	case *structpb.Value_StructValue, *structpb.Value_ListValue:
		return jsonenc.AppendValue(dst, v), KindJSON
	}
	return dst, KindMissing
}

// appendFilterState renders the object TYPED (its JSON value: a string
// object is quoted, as in Envoy) or PLAIN (its text).
func (p *part) appendFilterState(dst []byte, d *streaminfo.Dynamic) ([]byte, Kind) {
	obj := d.FilterState(p.name)
	if obj == nil {
		return dst, KindMissing
	}
	if p.plain {
		s, ok := obj.PlainString()
		if !ok {
			return dst, KindMissing
		}
		return append(dst, s...), KindString
	}
	out, ok := obj.AppendJSON(dst)
	if !ok {
		return dst, KindMissing
	}
	return out, KindJSON
}

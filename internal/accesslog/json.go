package accesslog

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/jsonenc"
)

// JSON access logs. The Struct is compiled once into a tree whose keys are
// sorted (Envoy always sorts) and pre-escaped; a line is one compact JSON
// object and a newline.
//
// Typed (typed_json_format, log_format.json_format): a string that is
// exactly one command operator keeps the operator's type (numbers for
// codes, sizes, durations) and a missing value is null, or the key is left
// out with omit_empty_values. Untyped (the legacy json_format): every value
// is a string and a missing one is "-".

type nodeKind uint8

const (
	nodeLiteral nodeKind = iota // pre-rendered JSON
	nodeValue                   // a format string
	nodeObject
	nodeList
)

type jsonNode struct {
	kind   nodeKind
	lit    []byte
	f      *formatter.Formatter
	fields []jsonField
	items  []jsonNode
}

type jsonField struct {
	key []byte // `"name":`
	val jsonNode
}

type jsonFormat struct {
	root      jsonNode
	typed     bool
	omitEmpty bool
}

// compileJSON compiles a format dictionary. Errors start with the key path
// (".a.b: ...") or ": ", so callers can prefix the field name.
func compileJSON(st *structpb.Struct, typed, omitEmpty bool) (lineFormat, error) {
	if len(st.GetFields()) == 0 {
		return nil, errors.New(": the format dictionary must not be empty")
	}
	j := &jsonFormat{typed: typed, omitEmpty: omitEmpty}
	root, err := j.compileStruct(st, "")
	if err != nil {
		return nil, err
	}
	j.root = root
	return j, nil
}

func (j *jsonFormat) compileStruct(st *structpb.Struct, path string) (jsonNode, error) {
	keys := make([]string, 0, len(st.GetFields()))
	for k := range st.GetFields() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := jsonNode{kind: nodeObject}
	for _, k := range keys {
		v, err := j.compileValue(st.GetFields()[k], path+"."+k)
		if err != nil {
			return n, err
		}
		key := jsonenc.AppendString(nil, k)
		n.fields = append(n.fields, jsonField{key: append(key, ':'), val: v})
	}
	return n, nil
}

func (j *jsonFormat) compileValue(v *structpb.Value, path string) (jsonNode, error) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		f, err := formatter.CompileWith(k.StringValue, formatter.Options{OmitEmptyValues: j.omitEmpty})
		if err != nil {
			return jsonNode{}, fmt.Errorf("%s: %w", path, err)
		}
		if s, ok := f.Static(); ok {
			return jsonNode{kind: nodeLiteral, lit: jsonenc.AppendString(nil, s)}, nil
		}
		return jsonNode{kind: nodeValue, f: f}, nil
	case *structpb.Value_StructValue:
		return j.compileStruct(k.StructValue, path)
	case *structpb.Value_ListValue:
		n := jsonNode{kind: nodeList}
		for i, item := range k.ListValue.GetValues() {
			c, err := j.compileValue(item, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return n, err
			}
			n.items = append(n.items, c)
		}
		return n, nil
	case *structpb.Value_NumberValue:
		lit := jsonenc.AppendNumber(nil, k.NumberValue)
		if !j.typed {
			lit = jsonenc.AppendString(nil, string(lit))
		}
		return jsonNode{kind: nodeLiteral, lit: lit}, nil
	case *structpb.Value_BoolValue:
		lit := strconv.AppendBool(nil, k.BoolValue)
		if !j.typed {
			lit = jsonenc.AppendString(nil, string(lit))
		}
		return jsonNode{kind: nodeLiteral, lit: lit}, nil
	case *structpb.Value_NullValue, nil:
		if !j.typed {
			return jsonNode{kind: nodeLiteral, lit: []byte(`"-"`)}, nil
		}
		return jsonNode{kind: nodeLiteral, lit: []byte("null")}, nil
	}
	return jsonNode{}, fmt.Errorf("%s: unsupported value", path)
}

func (j *jsonFormat) appendLine(dst []byte, ctx *formatter.Context) []byte {
	dst, _ = j.appendNode(dst, &j.root, ctx, j.omitEmpty)
	return append(dst, '\n')
}

// appendNode renders n; ok is false when the value is missing and omit is
// set, in which case nothing was appended.
func (j *jsonFormat) appendNode(dst []byte, n *jsonNode, ctx *formatter.Context, omit bool) ([]byte, bool) {
	switch n.kind {
	case nodeLiteral:
		return append(dst, n.lit...), true
	case nodeValue:
		start := len(dst)
		dst = append(dst, '"')
		vs := len(dst)
		if !j.typed {
			dst = n.f.Append(dst, ctx)
			return append(jsonenc.EscapeTail(dst, vs), '"'), true
		}
		var kind formatter.Kind
		dst, kind = n.f.AppendTyped(dst, ctx)
		switch kind {
		case formatter.KindMissing:
			dst = dst[:start]
			if omit {
				return dst, false
			}
			return append(dst, "null"...), true
		case formatter.KindNumber, formatter.KindJSON:
			copy(dst[start:], dst[vs:])
			return dst[:len(dst)-1], true
		}
		return append(jsonenc.EscapeTail(dst, vs), '"'), true
	case nodeObject:
		dst = append(dst, '{')
		first := true
		for i := range n.fields {
			fl := &n.fields[i]
			mark := len(dst)
			if !first {
				dst = append(dst, ',')
			}
			dst = append(dst, fl.key...)
			var ok bool
			if dst, ok = j.appendNode(dst, &fl.val, ctx, omit); !ok {
				dst = dst[:mark]
				continue
			}
			first = false
		}
		return append(dst, '}'), true
	case nodeList:
		dst = append(dst, '[')
		for i := range n.items {
			if i > 0 {
				dst = append(dst, ',')
			}
			// A list keeps its positions: missing items are null.
			dst, _ = j.appendNode(dst, &n.items[i], ctx, false)
		}
		return append(dst, ']'), true
	}
	return dst, true
}

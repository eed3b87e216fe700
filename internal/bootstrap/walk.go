package bootstrap

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// walker checks a generic JSON tree against message descriptors before
// protojson sees it. protojson stops at the first problem and reports it by
// byte offset; the walker reports every unknown field, type mismatch and bad
// enum name with its proto path. It also rewrites the tree in place:
//   - a TypedStruct {type_url, value} becomes {"@type": type_url, ...value},
//     so wrapped configs parse as the real type;
//   - the body of a typed_config whose type Legate does not support is
//     dropped, leaving {"@type": ...} for the support check to report.
type walker struct {
	source string
	errs   Errors
	// extra are message types walked and parsed in an Any besides the
	// supported typed_config types: the xDS resource types, when decoding
	// a file of resources.
	extra map[protoreflect.FullName]bool
}

func (w *walker) errorf(path, format string, args ...any) {
	fe := &FieldError{Path: path, Msg: fmt.Sprintf(format, args...), parse: true}
	if w.source == "" {
		w.errs = append(w.errs, fe)
		return
	}
	w.errs = append(w.errs, fmt.Errorf("%s: %w", w.source, fe))
}

// value checks v as the content of a message of type md. It returns false if
// v cannot be parsed at all; the caller then removes it from the tree so that
// parsing can go on and later checks still report their problems.
func (w *walker) value(v any, md protoreflect.MessageDescriptor, path string) bool {
	if md.FullName() == anyFullName {
		return w.any(v, path)
	}
	if isWellKnown(md) {
		return w.wellKnown(v, md, path)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		w.errorf(path, "expected an object for %s, got %s", md.FullName(), jsonKind(v))
		return false
	}
	w.object(obj, md, path, false)
	return true
}

// wellKnown checks the JSON form of a google.protobuf type: wrappers take
// their scalar, Duration and the like a string. Ranges and formats are left
// to protojson.
func (w *walker) wellKnown(v any, md protoreflect.MessageDescriptor, path string) bool {
	switch md.Name() {
	case "BoolValue", "StringValue", "BytesValue", "Int32Value", "UInt32Value",
		"Int64Value", "UInt64Value", "FloatValue", "DoubleValue":
		return w.scalarOrMessage(&v, md.Fields().ByName("value"), path)
	case "Duration", "Timestamp", "FieldMask":
		if _, ok := v.(string); !ok {
			w.errorf(path, "expected a string for %s, got %s", md.FullName(), jsonKind(v))
			return false
		}
	case "Struct", "Empty":
		if _, ok := v.(map[string]any); !ok {
			w.errorf(path, "expected an object for %s, got %s", md.FullName(), jsonKind(v))
			return false
		}
	case "ListValue":
		if _, ok := v.([]any); !ok {
			w.errorf(path, "expected a list, got %s", jsonKind(v))
			return false
		}
	}
	return true
}

// object checks the keys of obj against md's fields, unknown keys first and
// then in field order, so errors come out in the order of the support check.
// Keys that cannot be parsed are reported and deleted.
func (w *walker) object(obj map[string]any, md protoreflect.MessageDescriptor, path string, isAny bool) {
	fields := md.Fields()
	type entry struct {
		key string
		fd  protoreflect.FieldDescriptor
	}
	entries := make([]entry, 0, len(obj))
	for k := range obj {
		if isAny && k == "@type" {
			continue
		}
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		entries = append(entries, entry{k, fd})
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if (a.fd == nil) != (b.fd == nil) {
			return a.fd == nil
		}
		if a.fd != nil && a.fd.Index() != b.fd.Index() {
			return a.fd.Index() < b.fd.Index()
		}
		return a.key < b.key
	})
	var oneofs map[protoreflect.FullName]string
	for _, e := range entries {
		k, fd := e.key, e.fd
		if fd == nil {
			msg := fmt.Sprintf("unknown field %q in %s", k, md.FullName())
			if s := suggest(k, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			w.errorf(path, "%s", msg)
			delete(obj, k)
			continue
		}
		v := obj[k]
		if v == nil {
			continue // JSON null leaves a field unset
		}
		fpath := joinPath(path, string(fd.Name()))
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if oneofs == nil {
				oneofs = make(map[protoreflect.FullName]string)
			}
			if prev, dup := oneofs[od.FullName()]; dup {
				w.errorf(fpath, "only one of %s and %s may be set (oneof %s)", prev, fd.Name(), od.Name())
				delete(obj, k)
				continue
			}
			oneofs[od.FullName()] = string(fd.Name())
		}
		ok := true
		switch {
		case fd.IsList():
			list, isList := v.([]any)
			if !isList {
				// Envoy's JSON parser (protobuf's legacy syntax) takes a
				// single value for a one-element list, and Envoy's own
				// examples rely on it (dynamic-config-fs's lds.yaml).
				list = []any{v}
				obj[k] = list
			}
			for i := range list {
				ok = w.scalarOrMessage(&list[i], fd, fmt.Sprintf("%s[%d]", fpath, i)) && ok
			}
		case fd.IsMap():
			m, isMap := v.(map[string]any)
			if !isMap {
				w.errorf(fpath, "expected an object, got %s", jsonKind(v))
				ok = false
				break
			}
			mkeys := make([]string, 0, len(m))
			for mk := range m {
				mkeys = append(mkeys, mk)
			}
			sort.Strings(mkeys)
			for _, mk := range mkeys {
				mv := m[mk]
				ok = w.scalarOrMessage(&mv, fd.MapValue(), fmt.Sprintf("%s[%q]", fpath, mk)) && ok
				m[mk] = mv
			}
		default:
			ok = w.scalarOrMessage(&v, fd, fpath)
			obj[k] = v
		}
		if !ok {
			delete(obj, k)
		}
	}
}

// scalarOrMessage checks the value at vp, of fd's element kind, and reports
// whether it can be parsed; an enum name may be rewritten to its canonical
// spelling. Numbers are left to protojson (it accepts them quoted and
// checks their range).
func (w *walker) scalarOrMessage(vp *any, fd protoreflect.FieldDescriptor, path string) bool {
	v := *vp
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.value(v, fd.Message(), path)
	case protoreflect.EnumKind:
		switch e := v.(type) {
		case string:
			if fd.Enum().Values().ByName(protoreflect.Name(e)) == nil {
				// Envoy parses enums case-insensitively (protobuf's
				// case_insensitive_enum_parsing: an unknown name is retried
				// upper-cased), so "strict_dns" is STRICT_DNS.
				upper := strings.ToUpper(e)
				if fd.Enum().Values().ByName(protoreflect.Name(upper)) == nil {
					w.errorf(path, "unknown value %q for enum %s", e, fd.Enum().FullName())
					return false
				}
				*vp = upper
			}
		case json.Number:
		default:
			if fd.Enum().FullName() != "google.protobuf.NullValue" {
				w.errorf(path, "expected an enum name, got %s", jsonKind(v))
				return false
			}
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			w.errorf(path, "expected true or false, got %s", jsonKind(v))
			return false
		}
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			w.errorf(path, "expected a string, got %s", jsonKind(v))
			return false
		}
	default: // numbers
		switch v.(type) {
		case json.Number, string:
		default:
			w.errorf(path, "expected a number, got %s", jsonKind(v))
			return false
		}
	}
	return true
}

// any handles a typed_config object: unwraps TypedStructs, then checks the
// body against the named type if Legate supports it, or drops the body.
func (w *walker) any(v any, path string) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		w.errorf(path, "expected an object with \"@type\", got %s", jsonKind(v))
		return false
	}
	if len(obj) == 0 {
		return true
	}
	for {
		url, ok := obj["@type"].(string)
		if !ok {
			w.errorf(path, "typed_config has no \"@type\"")
			return false
		}
		name := typeNameOf(url)
		if name == typeXDSTypedStruct || name == typeUDPATypedStruct {
			if !w.unwrapTypedStruct(obj, path) {
				return false
			}
			continue // the wrapped type may itself be a TypedStruct
		}
		if !compiled().supportedTypes[name] && !w.extra[name] {
			for k := range obj {
				if k != "@type" {
					delete(obj, k)
				}
			}
			return true
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
		if err != nil {
			return true // cannot happen: supported types are linked (checked at init)
		}
		w.object(obj, mt.Descriptor(), path, true)
		return true
	}
}

// unwrapTypedStruct rewrites obj, a TypedStruct in JSON form, into the Any
// JSON form of the type it wraps.
func (w *walker) unwrapTypedStruct(obj map[string]any, path string) bool {
	inner, _ := obj["type_url"].(string)
	if inner == "" {
		inner, _ = obj["typeUrl"].(string)
	}
	if inner == "" {
		w.errorf(path, "TypedStruct has no type_url")
		return false
	}
	// A TypedStruct has only type_url and value: anything beside them is a
	// typo, as in any other message.
	extra := make([]string, 0, len(obj))
	for k := range obj {
		switch k {
		case "@type", "type_url", "typeUrl", "value":
		default:
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		msg := fmt.Sprintf("unknown field %q in %s", k, typeNameOf(obj["@type"].(string)))
		if s := suggest(k, typedStructFields); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		w.errorf(path, "%s", msg)
	}
	var body map[string]any
	switch v := obj["value"].(type) {
	case nil:
	case map[string]any:
		body = v
	default:
		w.errorf(path, "TypedStruct value must be an object, got %s", jsonKind(v))
		return false
	}
	for k := range obj {
		delete(obj, k)
	}
	for k, v := range body {
		obj[k] = v
	}
	obj["@type"] = inner
	return true
}

// typedStructFields are the fields of a TypedStruct (both versions have the same).
var typedStructFields = func() protoreflect.FieldDescriptors {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(typeXDSTypedStruct)
	if err != nil {
		panic(err) // linked in allowlist.go
	}
	return mt.Descriptor().Fields()
}()

func jsonKind(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return fmt.Sprintf("%t", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// suggest returns the field name closest to a misspelt key, if any is close.
func suggest(key string, fields protoreflect.FieldDescriptors) string {
	best, bestDist := "", 3
	if len(key) <= 4 {
		bestDist = 2
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		d := min(editDistance(key, string(fd.Name())), editDistance(key, fd.JSONName()))
		if d < bestDist {
			best, bestDist = string(fd.Name()), d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

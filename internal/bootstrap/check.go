package bootstrap

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

var (
	anyDesc       = (&anypb.Any{}).ProtoReflect().Descriptor()
	anyTypeURLFD  = anyDesc.Fields().ByName("type_url")
	anyValueFD    = anyDesc.Fields().ByName("value")
	anyFullName   = anyDesc.FullName()
	typedConfigNm = protoreflect.Name("typed_config")
)

// CheckResource reports every set field, enum value, map key, list item and
// typed_config type in m that Legate does not support, each prefixed with its
// path below path (which may be empty). Supported typed_config values are
// unpacked and checked too; TypedStruct wrappers must have been unwrapped.
func CheckResource(m proto.Message, path string) []error {
	c := checker{}
	c.message(m.ProtoReflect(), path, nil)
	return c.errs
}

// Check runs protoc-gen-validate's ValidateAll on m and on every supported
// typed_config inside it (ValidateAll does not look into Any), then the
// support check, and returns every problem found.
func Check(m proto.Message, path string) []error {
	c := checker{validate: true}
	c.validateMsg(m.ProtoReflect(), path)
	c.message(m.ProtoReflect(), path, nil)
	return c.errs
}

type checker struct {
	errs     []error
	validate bool
}

func (c *checker) add(path, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// isWellKnown reports messages such as Duration, UInt32Value or Struct: they
// are values, so any content is acceptable once the field holding them is.
func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf" && md.FullName() != anyFullName
}

// message checks the set fields of m in field-number order, so that errors
// come out in a stable order. inherited is the set of typed_config types an
// enclosing field allows for the next Any down the tree.
func (c *checker) message(m protoreflect.Message, path string, inherited map[protoreflect.FullName]bool) {
	md := m.Descriptor()
	if isWellKnown(md) {
		return
	}
	rule := compiled().rules[md.FullName()]
	fields := md.Fields()
	// An optional filter (HttpFilter.is_optional, FilterConfig.is_optional)
	// of a type Legate does not know is skipped, as in Envoy, not refused.
	optional := false
	if fd := fields.ByName("is_optional"); fd != nil && fd.Kind() == protoreflect.BoolKind && m.Get(fd).Bool() {
		optional = true
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		fpath := joinPath(path, string(fd.Name()))
		var fr *fieldRule
		if rule != nil {
			fr = rule.fields[fd.Number()]
		}
		if fr == nil {
			c.add(fpath, "field is not supported")
			continue
		}
		types := fr.types
		if types == nil {
			types = inherited
		}
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			for j := 0; j < l.Len(); j++ {
				c.value(fd, fr, types, l.Get(j), fmt.Sprintf("%s[%d]", fpath, j), fpath)
			}
		case fd.IsMap():
			mp := v.Map()
			keys := make([]protoreflect.MapKey, 0, mp.Len())
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			sort.Slice(keys, func(a, b int) bool { return keys[a].String() < keys[b].String() })
			for _, k := range keys {
				kpath := fmt.Sprintf("%s[%q]", fpath, k.String())
				if fr.keys != nil && !fr.keys[k.String()] {
					c.add(kpath, "%s", unsupportedKey(k.String(), fd.MapValue(), mp.Get(k), fr.keys))
					continue
				}
				c.value(fd.MapValue(), fr, types, mp.Get(k), kpath, kpath)
			}
		case optional && fd.Message() != nil && fd.Message().FullName() == anyFullName &&
			!compiled().supportedTypes[typeNameOf(v.Message().Get(anyTypeURLFD).String())]:
		default:
			c.value(fd, fr, types, v, fpath, path)
		}
	}
}

// value checks one value of field fd. parentPath is where a typed_config
// problem is reported: the message holding the Any, as Envoy users know it
// (e.g. "http_filters[0]" rather than "http_filters[0].typed_config").
func (c *checker) value(fd protoreflect.FieldDescriptor, fr *fieldRule, types map[protoreflect.FullName]bool, v protoreflect.Value, path, parentPath string) {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if fr.enum != nil && !fr.enum[v.Enum()] {
			name := fmt.Sprint(int32(v.Enum()))
			if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
				name = string(ev.Name())
			}
			c.add(path, "%s is not supported", name)
		}
	case protoreflect.StringKind:
		if fr.tokens != nil {
			for _, t := range strings.Split(v.String(), ",") {
				if t = strings.TrimSpace(t); t != "" && !fr.tokens[t] {
					c.add(path, "%q is not supported", t)
				}
			}
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if fd.Message().FullName() == anyFullName {
			report := path
			if fd.Name() == typedConfigNm {
				report = parentPath
			}
			c.any(v.Message(), path, report, types)
			return
		}
		c.message(v.Message(), path, types)
	}
}

// any checks a typed_config: its type must be allowed at this position; if
// it is, its content is unpacked and checked like any other message.
func (c *checker) any(a protoreflect.Message, path, report string, types map[protoreflect.FullName]bool) {
	url := a.Get(anyTypeURLFD).String()
	name := typeNameOf(url)
	if name == "" {
		c.add(report, "typed_config has no type URL")
		return
	}
	if !types[name] {
		if compiled().supportedTypes[name] && len(types) > 0 {
			c.add(report, "%s is not supported here; expected %s", name, strings.Join(sortedTypes(types), " or "))
		} else {
			c.add(report, "%s is not supported", name)
		}
		return
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		c.add(report, "%s is not supported", name)
		return
	}
	inner := mt.New()
	if err := (proto.UnmarshalOptions{}).Unmarshal(a.Get(anyValueFD).Bytes(), inner.Interface()); err != nil {
		c.add(path, "cannot decode %s: %v", name, err)
		return
	}
	if c.validate {
		c.validateMsg(inner, path)
	}
	c.message(inner, path, nil)
}

// protocolOptionsOf names the protocol options message of the Envoy
// extensions that take one in a cluster's typed_extension_protocol_options,
// by the extension name Envoy also accepts as the key.
var protocolOptionsOf = map[string]string{
	"envoy.filters.network.redis_proxy":        "envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions",
	"envoy.filters.network.thrift_proxy":       "envoy.extensions.filters.network.thrift_proxy.v3.ThriftProtocolOptions",
	"envoy.filters.network.sip_proxy":          "envoy.extensions.filters.network.sip_proxy.v3alpha.SipProtocolOptions",
	"envoy.filters.network.tcp_proxy":          "envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions",
	"envoy.upstreams.tcp.tcp_protocol_options": "envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions",
}

// unsupportedKey explains a map key outside the allowed keys. The hint
// names the message the entry is about, so that a Redis cluster's options
// are not told to become HttpProtocolOptions: a supported value type under
// the wrong key is told its key; an unsupported one, or the options of an
// extension Legate lacks, is named as not supported.
func unsupportedKey(key string, vd protoreflect.FieldDescriptor, v protoreflect.Value, allowed map[string]bool) string {
	valueType := protoreflect.FullName("")
	if vd.Kind() == protoreflect.MessageKind && vd.Message().FullName() == anyFullName {
		valueType = typeNameOf(v.Message().Get(anyTypeURLFD).String())
	}
	switch {
	case valueType != "" && allowed[string(valueType)]:
		return fmt.Sprintf("key %q is not supported; %s goes under the key %q", key, valueType, valueType)
	case valueType != "" && !compiled().supportedTypes[valueType]:
		return fmt.Sprintf("%s is not supported", valueType)
	case protocolOptionsOf[key] != "":
		return fmt.Sprintf("key %q is not supported: it names %s, which Legate does not implement", key, protocolOptionsOf[key])
	case allowed[string(typeNameOf(key))] && key != string(typeNameOf(key)):
		return fmt.Sprintf("key %q is not supported; use %s", key, typeNameOf(key))
	}
	return fmt.Sprintf("key %q is not supported; use %s", key, strings.Join(sortedKeys(allowed), " or "))
}

// typeNameOf returns the message name of a type URL: the part after the last '/'.
func typeNameOf(url string) protoreflect.FullName {
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		url = url[i+1:]
	}
	return protoreflect.FullName(url)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedTypes(m map[protoreflect.FullName]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

// validateMsg runs ValidateAll and turns its nested errors into path-prefixed lines.
func (c *checker) validateMsg(m protoreflect.Message, path string) {
	v, ok := m.Interface().(interface{ ValidateAll() error })
	if !ok {
		return
	}
	if err := v.ValidateAll(); err != nil {
		c.errs = append(c.errs, validationErrors(err, m.Descriptor(), path)...)
	}
}

// pgvError is the interface protoc-gen-validate's per-message error types share.
type pgvError interface {
	Field() string
	Reason() string
	Cause() error
	Key() bool
}

// validationErrors flattens a protoc-gen-validate error tree. Its field names
// are Go names ("StaticResources", "Listeners[0]"); they are mapped back to
// proto names through md so that paths read like the configuration.
func validationErrors(err error, md protoreflect.MessageDescriptor, path string) []error {
	if multi, ok := err.(interface{ AllErrors() []error }); ok {
		var out []error
		for _, e := range multi.AllErrors() {
			out = append(out, validationErrors(e, md, path)...)
		}
		return out
	}
	ve, ok := err.(pgvError)
	if !ok {
		return []error{&FieldError{Path: path, Msg: err.Error()}}
	}
	goName, index := ve.Field(), ""
	if i := strings.IndexByte(goName, '['); i >= 0 {
		goName, index = goName[:i], goName[i:]
	}
	name, fd := protoNameOf(md, goName)
	if fd != nil && fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind && len(index) >= 2 {
		index = fmt.Sprintf("[%q]", index[1:len(index)-1])
	}
	p := joinPath(path, name) + index
	if cause := ve.Cause(); cause != nil {
		var sub protoreflect.MessageDescriptor
		if fd != nil {
			if fd.IsMap() {
				sub = fd.MapValue().Message()
			} else {
				sub = fd.Message()
			}
		}
		if sub != nil {
			return validationErrors(cause, sub, p)
		}
		return []error{&FieldError{Path: p, Msg: ve.Reason() + ": " + cause.Error()}}
	}
	msg := ve.Reason()
	if od := oneofOf(md, goName); od != nil && msg == "value is required" {
		if choices := oneofChoices(md, od); len(choices) == 1 {
			msg = choices[0] + " is required"
		} else {
			msg = "one of " + strings.Join(choices, ", ") + " is required"
		}
	}
	if ve.Key() {
		msg = "key: " + msg
	}
	return []error{&FieldError{Path: p, Msg: msg}}
}

// protoNameOf finds the field (or oneof) whose generated Go name is goName.
func protoNameOf(md protoreflect.MessageDescriptor, goName string) (string, protoreflect.FieldDescriptor) {
	if md == nil {
		return goName, nil
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if goCamelCase(string(fd.Name())) == goName {
			return string(fd.Name()), fd
		}
	}
	if od := oneofOf(md, goName); od != nil {
		return string(od.Name()), nil
	}
	return goName, nil
}

func oneofOf(md protoreflect.MessageDescriptor, goName string) protoreflect.OneofDescriptor {
	if md == nil {
		return nil
	}
	oneofs := md.Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		if od := oneofs.Get(i); goCamelCase(string(od.Name())) == goName {
			return od
		}
	}
	return nil
}

// oneofChoices names the members of a oneof a user may set: those Legate
// supports, or all of them if none is.
func oneofChoices(md protoreflect.MessageDescriptor, od protoreflect.OneofDescriptor) []string {
	var supported, all []string
	rule := compiled().rules[md.FullName()]
	fields := od.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		all = append(all, string(fd.Name()))
		if rule != nil && rule.fields[fd.Number()] != nil {
			supported = append(supported, string(fd.Name()))
		}
	}
	if len(supported) > 0 {
		return supported
	}
	return all
}

// goCamelCase converts a proto field name to the Go name protoc-gen-go gives
// it: underscores dropped, the following letter (and a letter after a digit)
// upper-cased, a leading underscore becoming 'X'.
func goCamelCase(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '_' && i == 0:
			b = append(b, 'X')
		case ch == '_' && i+1 < len(s) && isLower(s[i+1]):
			// dropped; the next letter is upper-cased below
		case ch >= '0' && ch <= '9':
			b = append(b, ch)
		default:
			if isLower(ch) {
				ch -= 'a' - 'A'
			}
			b = append(b, ch)
			for i+1 < len(s) && isLower(s[i+1]) {
				i++
				b = append(b, s[i])
			}
		}
	}
	return string(b)
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

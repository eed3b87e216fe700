package admin

import (
	"strings"

	"github.com/cncf/xds/go/udpa/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Field masks for /config_dump?mask=, with the semantics of protobuf's
// FieldMaskUtil as Envoy uses them: paths are proto field names joined by
// '.', every segment but the last must be a singular message field, and
// trimming keeps only the fields the paths name.

var anyName = (&anypb.Any{}).ProtoReflect().Descriptor().FullName()

// parseMask splits ?mask= into paths: comma-separated, empty ones dropped.
func parseMask(s string) []string {
	paths := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}

// validMask reports whether every path names a field of md.
func validMask(md protoreflect.MessageDescriptor, paths []string) bool {
	for _, p := range paths {
		d := md
		for _, seg := range strings.Split(p, ".") {
			if d == nil {
				return false // a segment after a scalar, list or map
			}
			fd := d.Fields().ByName(protoreflect.Name(seg))
			if fd == nil {
				return false
			}
			d = nil
			if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
				d = fd.Message()
			}
		}
	}
	return true
}

// maskNode is a field mask as a tree: a node without children keeps its
// whole field.
type maskNode map[string]maskNode

func maskTree(paths []string) maskNode {
	root := maskNode{}
	for _, p := range paths {
		n := root
		segs := strings.Split(p, ".")
		for i, seg := range segs {
			child, seen := n[seg]
			if seen && len(child) == 0 {
				break // an ancestor is kept whole already
			}
			if i == len(segs)-1 {
				n[seg] = maskNode{} // kept whole, whatever finer paths said
				break
			}
			if child == nil {
				child = maskNode{}
				n[seg] = child
			}
			n = child
		}
	}
	return root
}

// trimMessage clears every field of m that tree does not name, and trims
// the messages it names with children.
func trimMessage(m protoreflect.Message, tree maskNode) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		sub, keep := tree[string(fd.Name())]
		switch {
		case !keep:
			m.Clear(fd)
		case len(sub) > 0:
			trimMessage(v.Message(), sub)
		}
		return true
	})
}

// trimResource masks one element of a dump (?resource= with ?mask=). The
// resource itself sits in an Any (StaticCluster.cluster,
// DynamicRouteConfig.route_config, …) that a plain mask cannot look into,
// so as in Envoy, paths through a singular Any field are split: the part
// after the Any masks the unpacked resource, the Any field is kept in the
// outer mask. A path naming the Any alone keeps the resource whole. ok is
// false when a path names no field.
func trimResource(el protoreflect.Message, paths []string) (ok bool, err error) {
	fields := el.Descriptor().Fields()
	var outer []string
	inner := map[protoreflect.FieldDescriptor][]string{}
	whole := map[protoreflect.FieldDescriptor]bool{}
	for _, p := range paths {
		first, rest, nested := strings.Cut(p, ".")
		fd := fields.ByName(protoreflect.Name(first))
		if fd == nil || fd.IsList() || fd.Kind() != protoreflect.MessageKind || fd.Message().FullName() != anyName {
			outer = append(outer, p)
			continue
		}
		outer = append(outer, first)
		if nested {
			inner[fd] = append(inner[fd], rest)
		} else {
			whole[fd] = true
		}
	}
	for fd, ps := range inner {
		if whole[fd] || !el.Has(fd) {
			continue
		}
		a := el.Get(fd).Message().Interface().(*anypb.Any)
		res, err := a.UnmarshalNew()
		if err != nil {
			return false, err
		}
		if !validMask(res.ProtoReflect().Descriptor(), ps) {
			return false, nil
		}
		trimMessage(res.ProtoReflect(), maskTree(ps))
		packed, err := anypb.New(res)
		if err != nil {
			return false, err
		}
		el.Set(fd, protoreflect.ValueOfMessage(packed.ProtoReflect()))
	}
	if !validMask(el.Descriptor(), outer) {
		return false, nil
	}
	trimMessage(el, maskTree(outer))
	return true, nil
}

// redacted replaces sensitive values, as in Envoy's dump.
const redacted = "[redacted]"

// redact replaces the value of every field marked sensitive in its proto
// (udpa.annotations.sensitive: private keys, session ticket keys, HMAC
// secrets) and of every field below one, descending into Any: strings and
// bytes become "[redacted]", other values are cleared. This is what Envoy
// does to /config_dump, so a dump never carries key material.
func redact(m protoreflect.Message, sensitive bool) error {
	if m.Descriptor().FullName() == anyName {
		a := m.Interface().(*anypb.Any)
		inner, err := a.UnmarshalNew()
		if err != nil {
			if sensitive {
				a.Value = []byte(redacted)
			}
			return nil // a type this binary does not know holds nothing it put there
		}
		if err := redact(inner.ProtoReflect(), sensitive); err != nil {
			return err
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner)
		if err != nil {
			return err
		}
		a.Value = b
		return nil
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		s := sensitive || isSensitive(fd)
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = redact(mv.Message(), s)
					return err == nil
				})
			} else if s {
				mp := v.Map()
				mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					if rv, ok := redactedScalar(fd.MapValue()); ok {
						mp.Set(k, rv)
					} else {
						mp.Clear(k)
					}
					return true
				})
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if fd.IsList() {
				l := v.List()
				for i := 0; i < l.Len() && err == nil; i++ {
					err = redact(l.Get(i).Message(), s)
				}
			} else {
				err = redact(v.Message(), s)
			}
		case s:
			rv, ok := redactedScalar(fd)
			switch {
			case !ok:
				m.Clear(fd)
			case fd.IsList():
				l := v.List()
				for i := range l.Len() {
					l.Set(i, rv)
				}
			default:
				m.Set(fd, rv)
			}
		}
		return err == nil
	})
	return err
}

func isSensitive(fd protoreflect.FieldDescriptor) bool {
	opts := fd.Options()
	if opts == nil || !proto.HasExtension(opts, annotations.E_Sensitive) {
		return false
	}
	v, _ := proto.GetExtension(opts, annotations.E_Sensitive).(bool)
	return v
}

// redactedScalar is "[redacted]" for a string or bytes field; other kinds
// have no such value and are cleared.
func redactedScalar(fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(redacted), true
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(redacted)), true
	}
	return protoreflect.Value{}, false
}

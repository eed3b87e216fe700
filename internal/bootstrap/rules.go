package bootstrap

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// fieldRule is a field of the allowlist resolved against its descriptor, so
// that the support check compares numbers and pointers, not strings.
type fieldRule struct {
	enum   map[protoreflect.EnumNumber]bool // nil: any value
	types  map[protoreflect.FullName]bool   // nil: inherit from the enclosing field
	keys   map[string]bool                  // nil: any key
	tokens map[string]bool                  // nil: any string
}

// msgRule holds the allowed fields of one message, indexed by field number.
type msgRule struct {
	fields map[protoreflect.FieldNumber]*fieldRule
}

// compiledRules is the allowlist resolved against the proto descriptors,
// built on first use so that allowlist_*.go files can extend the allowlist
// from their init functions first (see extend.go).
type compiledRules struct {
	// rules maps a message full name to its allowed fields.
	rules map[protoreflect.FullName]*msgRule
	// supportedTypes is every typed_config type allowed somewhere.
	supportedTypes map[protoreflect.FullName]bool
}

var compiled = sync.OnceValue(func() compiledRules {
	rules, types, err := compileAllowlist(allowlist)
	if err != nil {
		// The allowlist is static data; a mistake in it is a programming error
		// that TestAllowlistCompiles reports too.
		panic(err)
	}
	return compiledRules{rules: rules, supportedTypes: types}
})

func compileAllowlist(areas []area) (map[protoreflect.FullName]*msgRule, map[protoreflect.FullName]bool, error) {
	rs := make(map[protoreflect.FullName]*msgRule)
	types := make(map[protoreflect.FullName]bool)
	for _, a := range areas {
		for _, m := range a.Messages {
			name := protoreflect.FullName(m.Name)
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
			if err != nil {
				return nil, nil, fmt.Errorf("allowlist: message %s: %w", name, err)
			}
			md, ok := d.(protoreflect.MessageDescriptor)
			if !ok {
				return nil, nil, fmt.Errorf("allowlist: %s is not a message", name)
			}
			if _, dup := rs[name]; dup {
				return nil, nil, fmt.Errorf("allowlist: message %s listed twice", name)
			}
			mr := &msgRule{fields: make(map[protoreflect.FieldNumber]*fieldRule, len(m.Fields))}
			for _, f := range m.Fields {
				fd := md.Fields().ByName(protoreflect.Name(f.Name))
				if fd == nil {
					return nil, nil, fmt.Errorf("allowlist: %s has no field %q", name, f.Name)
				}
				fr := &fieldRule{}
				if f.Enum != nil {
					if fd.Kind() != protoreflect.EnumKind {
						return nil, nil, fmt.Errorf("allowlist: %s.%s is not an enum", name, f.Name)
					}
					fr.enum = make(map[protoreflect.EnumNumber]bool)
					for _, v := range f.Enum {
						ev := fd.Enum().Values().ByName(protoreflect.Name(v))
						if ev == nil {
							return nil, nil, fmt.Errorf("allowlist: %s.%s has no value %s", name, f.Name, v)
						}
						fr.enum[ev.Number()] = true
					}
				}
				if f.Types != nil {
					fr.types = make(map[protoreflect.FullName]bool)
					for _, t := range f.Types {
						if _, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(t)); err != nil {
							return nil, nil, fmt.Errorf("allowlist: %s.%s: type %s is not linked: %w", name, f.Name, t, err)
						}
						fr.types[protoreflect.FullName(t)] = true
						types[protoreflect.FullName(t)] = true
					}
				}
				if f.Keys != nil {
					if !fd.IsMap() {
						return nil, nil, fmt.Errorf("allowlist: %s.%s is not a map", name, f.Name)
					}
					fr.keys = make(map[string]bool)
					for _, k := range f.Keys {
						fr.keys[k] = true
					}
				}
				if f.Tokens != nil {
					if fd.Kind() != protoreflect.StringKind {
						return nil, nil, fmt.Errorf("allowlist: %s.%s is not a string", name, f.Name)
					}
					fr.tokens = make(map[string]bool)
					for _, t := range f.Tokens {
						fr.tokens[t] = true
					}
				}
				mr.fields[fd.Number()] = fr
			}
			rs[name] = mr
		}
	}
	return rs, types, nil
}

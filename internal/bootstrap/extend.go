package bootstrap

import "fmt"

// The allowlist is one table, but features land in parallel: a feature's
// file (allowlist_<feature>.go) extends it from init, next to nothing else,
// instead of every change editing allowlist.go. Extensions are applied
// before the allowlist is first compiled, and docs/compatibility.md shows
// the merged result.

// extendFields adds fields to a message already in the allowlist.
func extendFields(msg string, items ...any) {
	m := findMessage(msg)
	m.Fields = append(m.Fields, fs(items...)...)
}

// extendTypes allows more typed_config types in a field already in the
// allowlist (e.g. another network filter in Filter.typed_config).
func extendTypes(msg, fieldName string, types ...string) {
	m := findMessage(msg)
	for i := range m.Fields {
		if m.Fields[i].Name == fieldName {
			m.Fields[i].Types = append(m.Fields[i].Types, types...)
			return
		}
	}
	panic(fmt.Sprintf("bootstrap: allowlist: %s has no listed field %q to extend", msg, fieldName))
}

// addMessages adds messages to the area titled title, creating the area
// at the end of the table when it does not exist.
func addMessages(title, intro string, msgs ...message) {
	for i := range allowlist {
		if allowlist[i].Title == title {
			allowlist[i].Messages = append(allowlist[i].Messages, msgs...)
			return
		}
	}
	allowlist = append(allowlist, area{Title: title, Intro: intro, Messages: msgs})
}

func findMessage(name string) *message {
	if m := lookupMessage(name); m != nil {
		return m
	}
	panic(fmt.Sprintf("bootstrap: allowlist: no message %s to extend", name))
}

func lookupMessage(name string) *message {
	for i := range allowlist {
		for j := range allowlist[i].Messages {
			if allowlist[i].Messages[j].Name == name {
				return &allowlist[i].Messages[j]
			}
		}
	}
	return nil
}

// addOrExtendMessages adds messages to the area titled title, or adds their
// fields to a message another feature listed already: messages that
// several features share (CidrRange) then merge instead of being listed
// twice.
func addOrExtendMessages(title string, msgs ...message) {
	for _, m := range msgs {
		if existing := lookupMessage(m.Name); existing != nil {
			for _, f := range m.Fields {
				if !hasField(existing, f.Name) {
					existing.Fields = append(existing.Fields, f)
				}
			}
			continue
		}
		addMessages(title, "", m)
	}
}

func hasField(m *message, name string) bool {
	for _, f := range m.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// extendEnum allows more values of an enum field already in the allowlist
// with a restricted value list (e.g. another cluster type).
func extendEnum(msg, fieldName string, values ...string) {
	m := findMessage(msg)
	for i := range m.Fields {
		if m.Fields[i].Name == fieldName {
			if m.Fields[i].Enum == nil {
				panic(fmt.Sprintf("bootstrap: allowlist: %s.%s allows every value already", msg, fieldName))
			}
			m.Fields[i].Enum = append(m.Fields[i].Enum, values...)
			return
		}
	}
	panic(fmt.Sprintf("bootstrap: allowlist: %s has no listed field %q to extend", msg, fieldName))
}

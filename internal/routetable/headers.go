package routetable

//lint:file-ignore SA1019 Envoy's deprecated v3 fields (append, exact_match, ...) are accepted because real configs still use them.

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/http/message"
)

type appendAction uint8

const (
	appendIfExistsOrAdd appendAction = iota
	addIfAbsent
	overwriteIfExistsOrAdd
	overwriteIfExists
)

type headerAdd struct {
	name      string
	value     *formatter.Formatter
	action    appendAction
	keepEmpty bool
}

// headerMutation is one level's *_headers_to_add/remove.
type headerMutation struct {
	remove []string
	add    []headerAdd
}

func (m *headerMutation) empty() bool { return m == nil || len(m.remove) == 0 && len(m.add) == 0 }

// compileHeaderMutation compiles a level's headers_to_add and
// headers_to_remove. As in Envoy, :-prefixed and host headers can be neither
// added nor removed (host and path have dedicated rewrite options).
func compileHeaderMutation(add []*corev3.HeaderValueOption, remove []string, addPath, removePath string) (*headerMutation, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, nil
	}
	m := &headerMutation{}
	for i, name := range remove {
		if !modifiable(name) {
			return nil, fmt.Errorf("%s[%d]: :-prefixed or host headers may not be removed", removePath, i)
		}
		m.remove = append(m.remove, strings.ToLower(name))
	}
	for i, o := range add {
		p := fmt.Sprintf("%s[%d]", addPath, i)
		key := o.GetHeader().GetKey()
		if key == "" {
			return nil, fmt.Errorf("%s.header.key: must not be empty", p)
		}
		if !modifiable(key) {
			return nil, fmt.Errorf("%s.header.key: :-prefixed or host headers may not be modified", p)
		}
		if len(o.GetHeader().GetRawValue()) > 0 {
			return nil, fmt.Errorf("%s.header.raw_value: is not supported", p)
		}
		a := headerAdd{name: strings.ToLower(key), keepEmpty: o.GetKeepEmptyValue()}
		if o.GetAppend() != nil {
			if o.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				return nil, fmt.Errorf("%s: both append and append_action are set and it's not allowed", p)
			}
			if o.GetAppend().GetValue() {
				a.action = appendIfExistsOrAdd
			} else {
				a.action = overwriteIfExistsOrAdd
			}
		} else {
			switch o.GetAppendAction() {
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				a.action = appendIfExistsOrAdd
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				a.action = addIfAbsent
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				a.action = overwriteIfExistsOrAdd
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				a.action = overwriteIfExists
			default:
				return nil, fmt.Errorf("%s.append_action: unknown value %d", p, o.GetAppendAction())
			}
		}
		f, err := formatter.CompileHeaderValue(o.GetHeader().GetValue())
		if err != nil {
			return nil, fmt.Errorf("%s.header.value: %w", p, err)
		}
		a.value = f
		m.add = append(m.add, a)
	}
	return m, nil
}

func modifiable(name string) bool {
	return name != "" && name[0] != ':' && !strings.EqualFold(name, "host")
}

// maxInlinePending is how many evaluated values apply() keeps on the stack.
const maxInlinePending = 8

type pendingHeader struct {
	name, value string
	overwrite   bool
}

// apply runs one level: removes first, then every value is formatted
// against the headers as they are after the removes, then overwrites, then
// appends — Envoy's order, which makes remove-then-add replace a header and
// lets a value refer to a header another entry of the same level replaces.
func (m *headerMutation) apply(h *message.Headers, fctx *formatter.Context, isResponse bool) {
	if m == nil {
		return
	}
	for _, name := range m.remove {
		h.Del(name)
	}
	if len(m.add) == 0 {
		return
	}
	if isResponse {
		fctx.ResponseHeaders = *h
	}
	var inline [maxInlinePending]pendingHeader
	pending := inline[:0]
	for i := range m.add {
		a := &m.add[i]
		v := a.value.Format(fctx)
		if v == "" && !a.keepEmpty {
			continue
		}
		switch a.action {
		case appendIfExistsOrAdd:
			pending = append(pending, pendingHeader{a.name, v, false})
		case addIfAbsent:
			if !h.Has(a.name) {
				pending = append(pending, pendingHeader{a.name, v, false})
			}
		case overwriteIfExists:
			if h.Has(a.name) {
				pending = append(pending, pendingHeader{a.name, v, true})
			}
		case overwriteIfExistsOrAdd:
			pending = append(pending, pendingHeader{a.name, v, true})
		}
	}
	for _, p := range pending {
		if p.overwrite {
			h.Set(p.name, p.value)
		}
	}
	for _, p := range pending {
		if !p.overwrite {
			h.Add(p.name, p.value)
		}
	}
}

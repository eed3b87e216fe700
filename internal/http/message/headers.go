package message

// Header is one header field. Name is lower-case.
type Header struct {
	Name, Value string
}

// Headers is an ordered header list. A slice, not a map: requests carry a
// dozen headers, linear scans beat hashing, and order is preserved for
// repeated fields.
type Headers []Header

// Get returns the first value of name (lower-case).
func (h Headers) Get(name string) (string, bool) {
	for i := range h {
		if h[i].Name == name {
			return h[i].Value, true
		}
	}
	return "", false
}

// Value returns the first value of name, or "".
func (h Headers) Value(name string) string {
	v, _ := h.Get(name)
	return v
}

// Has reports whether name is present.
func (h Headers) Has(name string) bool {
	_, ok := h.Get(name)
	return ok
}

// Add appends a field.
func (h *Headers) Add(name, value string) {
	*h = append(*h, Header{Name: name, Value: value})
}

// Set replaces every field called name with one field.
func (h *Headers) Set(name, value string) {
	for i := range *h {
		if (*h)[i].Name == name {
			(*h)[i].Value = value
			h.delFrom(name, i+1)
			return
		}
	}
	h.Add(name, value)
}

// Del removes every field called name.
func (h *Headers) Del(name string) {
	h.delFrom(name, 0)
}

func (h *Headers) delFrom(name string, start int) {
	s := *h
	j := start
	for i := start; i < len(s); i++ {
		if s[i].Name != name {
			s[j] = s[i]
			j++
		}
	}
	clear(s[j:])
	*h = s[:j]
}

// Clone returns a copy that shares no backing array with h.
func (h Headers) Clone() Headers {
	if h == nil {
		return nil
	}
	return append(Headers(nil), h...)
}

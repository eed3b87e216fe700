package streaminfo

import (
	"sync/atomic"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/jsonenc"
)

// Dynamic is what filters leave for later filters, access logs and the
// terminal filter, as in Envoy: dynamic metadata (a Struct per filter
// namespace, %DYNAMIC_METADATA(ns:key)%) and filter state (objects by key,
// %FILTER_STATE(key)%).
//
// A connection keeps one (networkfilter.Conn.Dynamic); an HTTP stream's
// starts from its connection's (Reset with the connection's as parent):
// reads fall through to the parent until the stream writes, and its first
// write copies the parent's entries.
//
// The zero value is empty and costs nothing: reading it is one atomic
// load, and only a write allocates. Entries are immutable once stored; a
// write copies and swaps, so readers never lock and a connection's read
// and write sides (which run on different goroutines) may both write.
type Dynamic struct {
	cur    atomic.Pointer[dynamicData]
	parent *Dynamic
}

type dynamicData struct {
	metadata []namespaceEntry
	state    []stateEntry
}

// A handful of entries at most: slices searched in order beat maps, and
// copying them on write is cheap.
type namespaceEntry struct {
	name   string
	fields *structpb.Struct
}

type stateEntry struct {
	key string
	obj FilterStateObject
}

// FilterStateObject is one filter state value. Implementations are
// immutable.
type FilterStateObject interface {
	// PlainString is the object as text (Envoy's serializeAsString,
	// %FILTER_STATE(key:PLAIN)%, and what matchers compare); ok is false
	// when the object has no text form.
	PlainString() (s string, ok bool)
	// AppendJSON appends the object as one JSON value (Envoy's
	// serializeAsProto rendered as JSON, %FILTER_STATE(key)%); ok is false
	// when it has none, and then nothing was appended.
	AppendJSON(dst []byte) ([]byte, bool)
}

// StringObject is a string filter state value (Envoy's StringAccessor): its
// plain form is the string and its JSON form the quoted string.
type StringObject string

// PlainString returns the string.
func (s StringObject) PlainString() (string, bool) { return string(s), true }

// AppendJSON appends the string quoted.
func (s StringObject) AppendJSON(dst []byte) ([]byte, bool) {
	return jsonenc.AppendString(dst, string(s)), true
}

// Reset empties d and makes parent the data it starts from (nil for none).
// It must not race with other uses of d: call it before d is shared (a
// pooled stream's, before the stream starts).
func (d *Dynamic) Reset(parent *Dynamic) {
	d.cur.Store(nil)
	d.parent = parent
}

// load returns d's entries, or its parent's while d has written nothing.
func (d *Dynamic) load() *dynamicData {
	if d == nil {
		return nil
	}
	if cur := d.cur.Load(); cur != nil {
		return cur
	}
	return d.parent.load()
}

// Empty reports whether nothing was set (here or in the parent).
func (d *Dynamic) Empty() bool {
	data := d.load()
	return data == nil || len(data.metadata) == 0 && len(data.state) == 0
}

// update applies change to a copy of the current entries and stores it,
// retrying if another goroutine stored first.
func (d *Dynamic) update(change func(next *dynamicData)) {
	for {
		old := d.cur.Load()
		base := old
		if base == nil {
			base = d.parent.load()
		}
		var next dynamicData
		if base != nil {
			next.metadata = append([]namespaceEntry(nil), base.metadata...)
			next.state = append([]stateEntry(nil), base.state...)
		}
		change(&next)
		if d.cur.CompareAndSwap(old, &next) {
			return
		}
	}
}

// SetMetadata merges fields into the namespace's metadata, as Envoy's
// setDynamicMetadata does: a key already there is replaced. fields is
// copied; the caller may reuse it.
func (d *Dynamic) SetMetadata(namespace string, fields *structpb.Struct) {
	add := proto.Clone(fields).(*structpb.Struct)
	d.update(func(next *dynamicData) {
		for i := range next.metadata {
			if next.metadata[i].name == namespace {
				merged := proto.Clone(next.metadata[i].fields).(*structpb.Struct)
				if merged.Fields == nil {
					merged.Fields = make(map[string]*structpb.Value, len(add.GetFields()))
				}
				for k, v := range add.GetFields() {
					merged.Fields[k] = v
				}
				next.metadata[i].fields = merged
				return
			}
		}
		next.metadata = append(next.metadata, namespaceEntry{name: namespace, fields: add})
	})
}

// Metadata returns the namespace's metadata, nil when there is none. The
// Struct is shared: callers must not change it.
func (d *Dynamic) Metadata(namespace string) *structpb.Struct {
	data := d.load()
	if data == nil {
		return nil
	}
	for i := range data.metadata {
		if data.metadata[i].name == namespace {
			return data.metadata[i].fields
		}
	}
	return nil
}

// MetadataValue walks path (keys of nested Structs, at least one) from the
// namespace's metadata. The Value is shared: callers must not change it.
func (d *Dynamic) MetadataValue(namespace string, path []string) (*structpb.Value, bool) {
	st := d.Metadata(namespace)
	if st == nil || len(path) == 0 {
		return nil, false
	}
	var v *structpb.Value
	for i, key := range path {
		if i > 0 {
			st = v.GetStructValue()
			if st == nil {
				return nil, false
			}
		}
		var ok bool
		if v, ok = st.GetFields()[key]; !ok {
			return nil, false
		}
	}
	return v, true
}

// SetFilterState stores obj under key, replacing what was there.
func (d *Dynamic) SetFilterState(key string, obj FilterStateObject) {
	d.update(func(next *dynamicData) {
		for i := range next.state {
			if next.state[i].key == key {
				next.state[i].obj = obj
				return
			}
		}
		next.state = append(next.state, stateEntry{key: key, obj: obj})
	})
}

// FilterState returns the object stored under key, nil when there is none.
func (d *Dynamic) FilterState(key string) FilterStateObject {
	data := d.load()
	if data == nil {
		return nil
	}
	for i := range data.state {
		if data.state[i].key == key {
			return data.state[i].obj
		}
	}
	return nil
}

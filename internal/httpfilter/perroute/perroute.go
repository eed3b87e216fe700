// Package perroute is the per-route side of the HTTP filter contract:
// typed_per_filter_config on virtual hosts, routes and weighted clusters.
//
// It sits below both the route table (internal/routetable), which decodes
// the configs when it compiles a RouteConfiguration, and the filters
// (internal/filter/http/...), which register a parser for their per-route
// config type here and read the decoded value per request. Neither then
// imports the other.
//
// As in Envoy, the entry's key is the filter's name (HttpFilter.name) and
// its type picks the parser; the most specific level that has an entry for
// a filter wins (weighted cluster, then route, then virtual host).
package perroute

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/registry"
)

// Parser decodes and validates one per-route config message into the
// immutable value its filter reads per request. It runs when the route
// table is compiled, so a bad per-route config fails the route
// configuration (or the RDS update) as in Envoy.
type Parser func(msg proto.Message) (any, error)

// Registry holds the per-route config parsers by message type (e.g.
// envoy.extensions.filters.http.buffer.v3.BufferPerRoute).
var Registry = registry.New[Parser]("per-route HTTP filter config")

// ID is a filter name interned at config time, so a request finds its
// filter's entry by comparing integers. IDs start at 1; 0 is no filter.
type ID uint32

var names = struct {
	sync.Mutex
	ids map[string]ID
}{ids: map[string]ID{}}

// Intern returns the ID of a filter name, the same for every caller.
func Intern(name string) ID {
	names.Lock()
	defer names.Unlock()
	id, ok := names.ids[name]
	if !ok {
		id = ID(len(names.ids) + 1)
		names.ids[name] = id
	}
	return id
}

// Entry is one filter's per-route setting at one level.
type Entry struct {
	ID ID
	// Config is what the filter's Parser returned; nil when the entry
	// only enables or disables the filter (a FilterConfig without config).
	Config any
	// Disabled is FilterConfig.disabled: the filter does not run on the
	// route. An entry that is not disabled enables a filter the connection
	// manager lists as disabled (HttpFilter.disabled).
	Disabled bool
}

// Set is one level's entries, or the effective entries of a route after
// merging levels. It is immutable once compiled; a nil Set has none.
type Set []Entry

// Lookup finds the entry for id. Sets hold a few entries: a scan is
// cheaper than hashing and allocates nothing.
func (s Set) Lookup(id ID) (Entry, bool) {
	for i := range s {
		if s[i].ID == id {
			return s[i], true
		}
	}
	return Entry{}, false
}

// Override returns less with more's entries replacing (or adding to)
// less's: the more specific level wins per filter, as in Envoy. It shares
// memory with neither argument when both have entries.
func Override(less, more Set) Set {
	switch {
	case len(more) == 0:
		return less
	case len(less) == 0:
		return more
	}
	out := append(Set(nil), more...)
	for _, e := range less {
		if _, ok := more.Lookup(e.ID); !ok {
			out = append(out, e)
		}
	}
	return out
}

var filterConfigName = string((&routev3.FilterConfig{}).ProtoReflect().Descriptor().FullName())

// Compile decodes a typed_per_filter_config map. path names the map in
// errors, e.g. "virtual_hosts[0].routes[1].typed_per_filter_config".
func Compile(m map[string]*anypb.Any, path string) (Set, error) {
	if len(m) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // first error is deterministic
	var out Set
	for _, name := range keys {
		epath := fmt.Sprintf("%s[%q]", path, name)
		if name == "" {
			return nil, fmt.Errorf("%s: the filter name must not be empty", epath)
		}
		e, keep, err := compileEntry(m[name], epath)
		if err != nil {
			return nil, err
		}
		if keep {
			e.ID = Intern(name)
			out = append(out, e)
		}
	}
	return out, nil
}

// compileEntry decodes one map value; keep is false for an optional entry
// of a type Legate does not know, which Envoy ignores.
func compileEntry(a *anypb.Any, path string) (e Entry, keep bool, err error) {
	if a == nil {
		return Entry{}, false, fmt.Errorf("%s: a config is required", path)
	}
	optional := false
	if typeName(a.GetTypeUrl()) == filterConfigName {
		var fc routev3.FilterConfig
		if err := a.UnmarshalTo(&fc); err != nil {
			return Entry{}, false, fmt.Errorf("%s: %w", path, err)
		}
		if fc.GetDisabled() {
			// The config is ignored, as in Envoy.
			return Entry{Disabled: true}, true, nil
		}
		if fc.GetConfig() == nil {
			return Entry{}, true, nil
		}
		a, optional, path = fc.GetConfig(), fc.GetIsOptional(), path+".config"
	}
	if optional && !Registry.Has(a) {
		return Entry{}, false, nil
	}
	parse, msg, err := Registry.Lookup(a)
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s: %w", path, err)
	}
	v, err := parse(msg)
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return Entry{Config: v}, true, nil
}

func typeName(url string) string { return url[strings.LastIndexByte(url, '/')+1:] }

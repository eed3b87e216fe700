// Package registry maps typed_config type URLs to extension factories, one
// registry per extension category. Extensions register in init; the `name`
// beside a typed_config is only a label, as in Envoy.
package registry

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Registry holds the factories of one category. F is the factory type.
type Registry[F any] struct {
	category  string
	mu        sync.RWMutex
	factories map[string]F // keyed by full proto message name
}

// New returns an empty registry; category names it in errors.
func New[F any](category string) *Registry[F] {
	return &Registry[F]{category: category, factories: map[string]F{}}
}

// Register adds a factory for the config message type of sample.
func (r *Registry[F]) Register(sample proto.Message, f F) {
	name := string(sample.ProtoReflect().Descriptor().FullName())
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[name]; dup {
		panic(fmt.Sprintf("registry %s: %s registered twice", r.category, name))
	}
	r.factories[name] = f
}

// Lookup unpacks a typed_config and returns its factory and message.
func (r *Registry[F]) Lookup(cfg *anypb.Any) (F, proto.Message, error) {
	var zero F
	if cfg == nil {
		return zero, nil, fmt.Errorf("typed_config is required")
	}
	name := cfg.TypeUrl[strings.LastIndexByte(cfg.TypeUrl, '/')+1:]
	r.mu.RLock()
	f, ok := r.factories[name]
	r.mu.RUnlock()
	if !ok {
		return zero, nil, fmt.Errorf("%s is not supported as a %s", name, r.category)
	}
	msg, err := cfg.UnmarshalNew()
	if err != nil {
		return zero, nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, msg, nil
}

// Has reports whether a factory is registered for the type a typed_config
// names (an optional filter of another type is skipped, not refused).
func (r *Registry[F]) Has(cfg *anypb.Any) bool {
	if cfg == nil {
		return false
	}
	name := cfg.TypeUrl[strings.LastIndexByte(cfg.TypeUrl, '/')+1:]
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.factories[name]
	return ok
}

// Names lists the registered config types, sorted.
func (r *Registry[F]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.factories))
	for n := range r.factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

package controlplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Registry TTL bounds.
const (
	DefaultTTL = 30 * time.Second
	MinTTL     = time.Second
)

// MetadataNamespace is the filter_metadata key an instance's metadata is
// served under on its LbEndpoint: the one Envoy's subset load balancer reads.
const MetadataNamespace = "envoy.lb"

// ErrNotFound is returned for an unknown service or instance.
var ErrNotFound = errors.New("not found")

// validName is what service and instance ids may contain: a service name
// becomes a cluster_name, and both appear in URLs unescaped.
var validName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// InstanceSpec is what a registration carries.
type InstanceSpec struct {
	Address  string         `json:"address"`
	Port     int            `json:"port"`
	Metadata map[string]any `json:"metadata,omitempty"`
	// TTL is a Go duration ("10s"); empty means DefaultTTL.
	TTL string `json:"ttl,omitempty"`
}

// Instance is one registered instance of a service, as the API shows it.
type Instance struct {
	ID            string         `json:"id"`
	Service       string         `json:"service"`
	Address       string         `json:"address"`
	Port          int            `json:"port"`
	Metadata      map[string]any `json:"metadata,omitempty"`
	TTL           string         `json:"ttl"`
	Registered    time.Time      `json:"registered"`
	LastHeartbeat time.Time      `json:"last_heartbeat"`
	Expires       time.Time      `json:"expires"`

	ttl  time.Duration
	addr netip.Addr
}

// Service is a service and its live instances, sorted by id.
type Service struct {
	Name      string     `json:"name"`
	Instances []Instance `json:"instances"`
}

// Registry holds the registered instances. Every change that alters what
// is served (a new, changed, removed or expired instance) calls onChange
// after the registry's lock is released; a heartbeat, or a re-PUT with the
// same address, port and metadata, only extends the expiry.
type Registry struct {
	mu       sync.Mutex
	services map[string]map[string]*Instance
	now      func() time.Time
	onChange func(reason string)
}

// NewRegistry returns an empty registry. now may be nil (time.Now).
func NewRegistry(now func() time.Time, onChange func(reason string)) *Registry {
	if now == nil {
		now = time.Now
	}
	if onChange == nil {
		onChange = func(string) {}
	}
	return &Registry{services: map[string]map[string]*Instance{}, now: now, onChange: onChange}
}

// ValidationError is a client error in a registration.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// ValidateName checks a service or instance id.
func ValidateName(kind, name string) error {
	if !validName.MatchString(name) {
		return invalid("%s %q: want 1 to 128 of [A-Za-z0-9._-]", kind, name)
	}
	return nil
}

// Put registers or updates an instance and reports whether it was new.
func (r *Registry) Put(service, id string, spec InstanceSpec) (inst Instance, created bool, err error) {
	if err := ValidateName("service", service); err != nil {
		return Instance{}, false, err
	}
	if err := ValidateName("instance id", id); err != nil {
		return Instance{}, false, err
	}
	addr, err := netip.ParseAddr(spec.Address)
	if err != nil || addr.Zone() != "" {
		return Instance{}, false, invalid("address %q: want an IP literal", spec.Address)
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return Instance{}, false, invalid("port %d: want 1 to 65535", spec.Port)
	}
	ttl := DefaultTTL
	if spec.TTL != "" {
		if ttl, err = time.ParseDuration(spec.TTL); err != nil {
			return Instance{}, false, invalid("ttl %q: want a duration such as \"10s\"", spec.TTL)
		}
		if ttl < MinTTL {
			return Instance{}, false, invalid("ttl %q: must be at least %v", spec.TTL, MinTTL)
		}
	}
	if spec.Metadata != nil {
		// Checked here so that building the snapshot cannot fail later.
		if _, err := structpb.NewStruct(spec.Metadata); err != nil {
			return Instance{}, false, invalid("metadata: %v", err)
		}
	}

	r.mu.Lock()
	now := r.now()
	insts := r.services[service]
	if insts == nil {
		insts = map[string]*Instance{}
		r.services[service] = insts
	}
	old := insts[id]
	in := &Instance{
		ID: id, Service: service, Address: addr.String(), Port: spec.Port, Metadata: spec.Metadata,
		TTL: ttl.String(), ttl: ttl, addr: addr,
		Registered: now, LastHeartbeat: now, Expires: now.Add(ttl),
	}
	changed := true
	if old != nil {
		in.Registered = old.Registered
		changed = old.Address != in.Address || old.Port != in.Port || !jsonEqual(old.Metadata, in.Metadata)
	}
	insts[id] = in
	out := *in
	r.mu.Unlock()

	if changed {
		verb := "registered"
		if old != nil {
			verb = "updated"
		}
		r.onChange(fmt.Sprintf("%s %s/%s at %s", verb, service, id, netip.AddrPortFrom(addr, uint16(spec.Port))))
	}
	return out, old == nil, nil
}

// Heartbeat extends an instance's lease by its TTL.
func (r *Registry) Heartbeat(service, id string) (Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.services[service][id]
	if in == nil {
		return Instance{}, fmt.Errorf("instance %s/%s: %w", service, id, ErrNotFound)
	}
	in.LastHeartbeat = r.now()
	in.Expires = in.LastHeartbeat.Add(in.ttl)
	return *in, nil
}

// Delete deregisters an instance.
func (r *Registry) Delete(service, id string) error {
	r.mu.Lock()
	in := r.services[service][id]
	if in != nil {
		r.removeLocked(service, id)
	}
	r.mu.Unlock()
	if in == nil {
		return fmt.Errorf("instance %s/%s: %w", service, id, ErrNotFound)
	}
	r.onChange(fmt.Sprintf("deregistered %s/%s", service, id))
	return nil
}

// removeLocked drops an instance; a service with no instances left is
// forgotten (its load assignment, if a cluster uses it, becomes empty).
func (r *Registry) removeLocked(service, id string) {
	delete(r.services[service], id)
	if len(r.services[service]) == 0 {
		delete(r.services, service)
	}
}

// Expire removes every instance whose lease has passed and returns how many.
func (r *Registry) Expire() int {
	r.mu.Lock()
	now := r.now()
	var gone []string
	for svc, insts := range r.services {
		for id, in := range insts {
			if !now.Before(in.Expires) {
				r.removeLocked(svc, id)
				gone = append(gone, svc+"/"+id)
			}
		}
	}
	r.mu.Unlock()
	if len(gone) > 0 {
		slices.Sort(gone)
		r.onChange("expired " + strings.Join(gone, ", "))
	}
	return len(gone)
}

// Services lists every service with live instances, sorted by name.
func (r *Registry) Services() []Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := slices.Sorted(maps.Keys(r.services))
	out := make([]Service, 0, len(names))
	for _, n := range names {
		out = append(out, r.serviceLocked(n))
	}
	return out
}

// Service returns one service; ok is false when it has no instances.
func (r *Registry) Service(name string) (s Service, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.services[name]; !ok {
		return Service{}, false
	}
	return r.serviceLocked(name), true
}

func (r *Registry) serviceLocked(name string) Service {
	insts := r.services[name]
	s := Service{Name: name, Instances: make([]Instance, 0, len(insts))}
	for _, id := range slices.Sorted(maps.Keys(insts)) {
		s.Instances = append(s.Instances, *insts[id])
	}
	return s
}

// LoadAssignment is the service's endpoints as a ClusterLoadAssignment
// named after it, instances in id order (so equal registries give equal
// bytes and hence equal versions). An unknown service gives an empty one.
func (r *Registry) LoadAssignment(service string) *endpoint.ClusterLoadAssignment {
	cla := &endpoint.ClusterLoadAssignment{ClusterName: service}
	s, ok := r.Service(service)
	if !ok {
		return cla
	}
	lle := &endpoint.LocalityLbEndpoints{}
	for _, in := range s.Instances {
		lbe := &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address:       in.Address,
					PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(in.Port)},
				}}},
				Hostname: in.ID,
			}},
		}
		if len(in.Metadata) > 0 {
			st, _ := structpb.NewStruct(in.Metadata) // checked by Put
			lbe.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataNamespace: st}}
		}
		lle.LbEndpoints = append(lle.LbEndpoints, lbe)
	}
	cla.Endpoints = []*endpoint.LocalityLbEndpoints{lle}
	return cla
}

// jsonEqual compares two decoded JSON objects.
func jsonEqual(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	sa, err1 := structpb.NewStruct(a)
	sb, err2 := structpb.NewStruct(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return protoEqual(sa, sb)
}

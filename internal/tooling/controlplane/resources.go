package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// servedTypes are the resource types legate-cp serves, in Envoy's update
// order (CDS, EDS, LDS, RDS, then SDS).
var servedTypes = []resource.Type{
	resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType,
}

// shortNames name the served types in logs and in the HTTP API.
var shortNames = map[resource.Type]string{
	resource.ClusterType:  "clusters",
	resource.EndpointType: "endpoints",
	resource.ListenerType: "listeners",
	resource.RouteType:    "routes",
	resource.SecretType:   "secrets",
}

// Resource is one decoded resource and where it came from.
type Resource struct {
	Type    resource.Type
	Name    string
	Message types.Resource
	// Origin is "file: resources[i]", for error messages.
	Origin string
}

// ResourceSet is the decoded content of a resource directory (or of the
// embedded default), each type's resources in file order.
type ResourceSet struct {
	ByType map[resource.Type][]Resource
	// Files are the files read, relative to the directory.
	Files []string
}

func (s *ResourceSet) add(r Resource) {
	if s.ByType == nil {
		s.ByType = map[resource.Type][]Resource{}
	}
	s.ByType[r.Type] = append(s.ByType[r.Type], r)
}

// isResourceFile reports the files a directory load reads: YAML and JSON,
// but not hidden files (editors' swap files, the .tmp of an atomic rename).
func isResourceFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// LoadDir reads every *.yaml, *.yml and *.json file directly in dir (sorted
// by name) and decodes and validates each resource in it. It does not check
// references between resources; Build does.
func LoadDir(dir string) (*ResourceSet, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("resource directory: %w", err)
	}
	set := &ResourceSet{}
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !isResourceFile(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.Files = append(set.Files, e.Name())
		rs, err := DecodeFile(e.Name(), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rs {
			set.add(r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// DecodeFile decodes one resource file: a YAML or JSON document in the shape
// of a DiscoveryResponse as Envoy's path_config_source reads it,
//
//	resources:
//	- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
//	  name: ...
//
// Every resource is decoded strictly (unknown fields are errors) and
// validated with its protoc-gen-validate rules, typed_configs included.
// Errors name the file, the resource's index and name, and the field.
func DecodeFile(file string, data []byte) ([]Resource, error) {
	isJSON := strings.EqualFold(filepath.Ext(file), ".json")
	if !isJSON {
		j, err := yaml.YAMLToJSONStrict(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		data = j
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", file, err)
	}
	if top == nil {
		return nil, nil // an empty file holds no resources
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want an object with a resources list, got %s", file, jsonKind(top))
	}
	for k := range obj {
		// version_info is what Envoy's own files carry; it is ignored because
		// legate-cp versions what it serves itself.
		if k != "resources" && k != "version_info" {
			return nil, fmt.Errorf("%s: unknown field %q (want resources and optionally version_info)", file, k)
		}
	}
	items, ok := obj["resources"].([]any)
	if !ok && obj["resources"] != nil {
		return nil, fmt.Errorf("%s: resources: want a list, got %s", file, jsonKind(obj["resources"]))
	}
	var out []Resource
	var errs []error
	for i, item := range items {
		r, err := decodeResource(item)
		origin := fmt.Sprintf("%s: resources[%d]", file, i)
		if r.Name != "" {
			origin += fmt.Sprintf(" (%s %q)", strings.TrimSuffix(shortNames[r.Type], "s"), r.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", origin, err))
			continue
		}
		r.Origin = origin
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func decodeResource(item any) (Resource, error) {
	obj, ok := item.(map[string]any)
	if !ok {
		return Resource{}, fmt.Errorf("want an object, got %s", jsonKind(item))
	}
	typeURL, _ := obj["@type"].(string)
	if typeURL == "" {
		return Resource{}, errors.New(`"@type" is missing`)
	}
	if _, ok := shortNames[typeURL]; !ok {
		return Resource{}, fmt.Errorf(`"@type": %q is not a served type (want a Listener, Cluster, RouteConfiguration, ClusterLoadAssignment or Secret)`, typeURL)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		return Resource{}, fmt.Errorf(`"@type": %w`, err)
	}
	r := Resource{Type: typeURL}
	if n, ok := obj["name"].(string); ok {
		r.Name = n
	} else if n, ok := obj["cluster_name"].(string); ok {
		r.Name = n
	} else if n, ok := obj["clusterName"].(string); ok {
		r.Name = n
	}
	body := make(map[string]any, len(obj))
	for k, v := range obj {
		if k != "@type" {
			body[k] = v
		}
	}
	normalize(body, mt.Descriptor())
	js, err := json.Marshal(body)
	if err != nil {
		return r, err
	}
	m := mt.New().Interface()
	if err := protojson.Unmarshal(js, m); err != nil {
		// protojson's offsets refer to the converted JSON, not the file, and
		// its message does not always name the field: find the field.
		msg := jsonOffset.ReplaceAllString(strings.TrimPrefix(err.Error(), "proto: "), "")
		if p := locate(body, mt.Descriptor(), ""); p != "" {
			msg = p + ": " + msg
		}
		return r, errors.New(msg)
	}
	if err := validateDeep(m, ""); err != nil {
		return r, err
	}
	r.Message = m.(types.Resource)
	r.Name = resourceName(r.Message)
	if r.Name == "" {
		return r, errors.New("name is empty")
	}
	return r, nil
}

var jsonOffset = regexp.MustCompile(`\(line \d+:\d+\): `)

// decodes reports whether protojson accepts obj as a message of type md.
func decodes(obj map[string]any, md protoreflect.MessageDescriptor) bool {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		return false
	}
	js, err := json.Marshal(obj)
	return err == nil && protojson.Unmarshal(js, mt.New().Interface()) == nil
}

// locate returns the path of the field that makes v fail to decode as md,
// as deep as it can tell, or "" when it cannot find one.
func locate(v any, md protoreflect.MessageDescriptor, path string) string {
	obj, ok := v.(map[string]any)
	if !ok {
		return path
	}
	inner := md
	var typeKey map[string]any
	if md.FullName() == "google.protobuf.Any" {
		url, _ := obj["@type"].(string)
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
		if err != nil {
			return joinPath(path, "@type")
		}
		inner = mt.Descriptor()
		if inner.ParentFile().Package() == "google.protobuf" {
			return path
		}
		typeKey = map[string]any{"@type": url}
	} else if md.ParentFile().Package() == "google.protobuf" {
		return path
	}
	for _, k := range sortedKeys(obj) {
		if k == "@type" && typeKey != nil {
			continue
		}
		single := map[string]any{k: obj[k]}
		for tk, tv := range typeKey {
			single[tk] = tv
		}
		if decodes(single, md) {
			continue
		}
		p := joinPath(path, k)
		fd := inner.Fields().ByJSONName(k)
		if fd == nil {
			fd = inner.Fields().ByName(protoreflect.Name(k))
		}
		if fd == nil || (fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind) {
			return p
		}
		switch val := obj[k].(type) {
		case []any:
			if fd.IsList() {
				for i, e := range val {
					if eo, ok := e.(map[string]any); !ok || !decodes(eo, fd.Message()) {
						return locate(e, fd.Message(), fmt.Sprintf("%s[%d]", p, i))
					}
				}
			}
		case map[string]any:
			if fd.IsMap() {
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					for _, mk := range sortedKeys(val) {
						if eo, ok := val[mk].(map[string]any); !ok || !decodes(eo, fd.MapValue().Message()) {
							return locate(val[mk], fd.MapValue().Message(), fmt.Sprintf("%s[%q]", p, mk))
						}
					}
				}
				return p
			}
			return locate(val, fd.Message(), p)
		}
		return p
	}
	return ""
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// resourceName is the name a resource is served under.
func resourceName(m types.Resource) string {
	switch v := m.(type) {
	case *listener.Listener:
		return v.GetName()
	case *cluster.Cluster:
		return v.GetName()
	case *route.RouteConfiguration:
		return v.GetName()
	case *endpoint.ClusterLoadAssignment:
		return v.GetClusterName()
	case *tlsv3.Secret:
		return v.GetName()
	}
	return ""
}

// normalize rewrites a JSON tree for protojson the way Envoy's own loader
// reads it: a single value where a list is expected is a one-element list.
// Envoy's dynamic-config-fs example relies on this (`filters:` holding one
// object). It follows typed_config (Any) into the types it can resolve.
func normalize(v any, md protoreflect.MessageDescriptor) {
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	if md.FullName() == "google.protobuf.Any" {
		url, _ := obj["@type"].(string)
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
		if err != nil {
			return // protojson reports the unresolvable type
		}
		md = mt.Descriptor()
	}
	if md.ParentFile().Package() == "google.protobuf" {
		return // well-known types have JSON forms of their own
	}
	fields := md.Fields()
	for k, val := range obj {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd == nil {
			continue
		}
		isMsg := fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind
		switch {
		case fd.IsList():
			list, isList := val.([]any)
			if !isList && val != nil {
				list = []any{val}
				obj[k] = list
			}
			if isMsg {
				for _, e := range list {
					normalize(e, fd.Message())
				}
			}
		case fd.IsMap():
			if m, ok := val.(map[string]any); ok && fd.MapValue().Kind() == protoreflect.MessageKind {
				for _, e := range m {
					normalize(e, fd.MapValue().Message())
				}
			}
		case isMsg:
			normalize(val, fd.Message())
		}
	}
}

// validateDeep runs protoc-gen-validate's ValidateAll on m and on every
// typed_config inside it (ValidateAll does not unpack Any).
func validateDeep(m proto.Message, path string) error {
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			if path != "" {
				err = fmt.Errorf("%s: %w", path, err)
			}
			errs = append(errs, err)
		}
	}
	walkAnys(m.ProtoReflect(), path, func(a *anypb.Any, p string) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			return
		}
		if err := validateDeep(inner, p); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}

// walkAnys calls f for every Any directly below m (not inside another Any).
func walkAnys(m protoreflect.Message, path string, f func(*anypb.Any, string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		p := string(fd.Name())
		if path != "" {
			p = path + "." + p
		}
		visit := func(mv protoreflect.Message, p string) {
			if a, ok := mv.Interface().(*anypb.Any); ok {
				f(a, p)
				return
			}
			walkAnys(mv, p, f)
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			var keys []protoreflect.MapKey
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				visit(v.Map().Get(k).Message(), fmt.Sprintf("%s[%q]", p, k.String()))
			}
		default:
			visit(v.Message(), p)
		}
		return true
	})
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}

package admin

import (
	"fmt"
	"net/http"
	"regexp"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// dumpQuery is what /config_dump was asked for, as in Envoy: resource
// picks one repeated field of the dumps and lists its elements, mask
// trims (each dump, or each element with resource), nameRE keeps the
// resources whose name it fully matches, includeEDS adds the endpoints.
type dumpQuery struct {
	resource   string
	mask       []string // nil: no ?mask=
	maskText   string
	nameRE     *regexp.Regexp // nil: every name
	includeEDS bool
}

// queryError is a problem with the query, answered with its status.
type queryError struct {
	code int
	msg  string
}

func (e *queryError) Error() string { return e.msg }

var endpointsDumpName = (&adminv3.EndpointsConfigDump{}).ProtoReflect().Descriptor().FullName()

// shapeDump applies q to cd and returns the ConfigDump to print.
func shapeDump(cd *adminv3.ConfigDump, q dumpQuery) (*adminv3.ConfigDump, error) {
	dumps := make([]proto.Message, 0, len(cd.GetConfigs()))
	for _, a := range cd.GetConfigs() {
		// The endpoints are shown only when asked for, as in Envoy; a
		// server may then always include them.
		if !q.includeEDS && typeName(a.GetTypeUrl()) == endpointsDumpName {
			continue
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", a.GetTypeUrl(), err)
		}
		if q.nameRE != nil {
			if err := filterNames(m.ProtoReflect(), q.nameRE); err != nil {
				return nil, err
			}
		}
		dumps = append(dumps, m)
	}
	if q.resource != "" {
		return selectResource(dumps, q)
	}
	out := &adminv3.ConfigDump{}
	for _, m := range dumps {
		if q.mask != nil {
			// A mask names the fields of one dump type; the dumps it does
			// not fit are left out rather than refused.
			if !validMask(m.ProtoReflect().Descriptor(), q.mask) {
				continue
			}
			trimMessage(m.ProtoReflect(), maskTree(q.mask))
		}
		a, err := anypb.New(m)
		if err != nil {
			return nil, err
		}
		out.Configs = append(out.Configs, a)
	}
	if q.mask != nil && len(out.Configs) == 0 {
		return nil, &queryError{http.StatusBadRequest, fmt.Sprintf("FieldMask %s could not be successfully applied to any configs.", q.maskText)}
	}
	return out, nil
}

// selectResource implements ?resource=: the first dump with a field of
// that name must have it repeated; its elements, each masked when a mask
// is given, become the configs.
func selectResource(dumps []proto.Message, q dumpQuery) (*adminv3.ConfigDump, error) {
	for _, m := range dumps {
		fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(q.resource))
		if fd == nil {
			continue
		}
		if !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
			return nil, &queryError{http.StatusBadRequest, fmt.Sprintf("%s is not a repeated field. Use ?mask=%s to get only this field", q.resource, q.resource)}
		}
		out := &adminv3.ConfigDump{}
		list := m.ProtoReflect().Get(fd).List()
		for i := range list.Len() {
			el := list.Get(i).Message()
			if q.mask != nil {
				ok, err := trimResource(el, q.mask)
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, &queryError{http.StatusBadRequest, fmt.Sprintf("FieldMask %s could not be successfully used.", q.maskText)}
				}
			}
			a, err := anypb.New(el.Interface())
			if err != nil {
				return nil, err
			}
			out.Configs = append(out.Configs, a)
		}
		return out, nil
	}
	return nil, &queryError{http.StatusNotFound, fmt.Sprintf("%s not found in config dump", q.resource)}
}

// filterNames implements ?name_regex=: in every repeated field of a dump,
// elements whose resource name does not fully match re are dropped.
// Elements without a name (none today) are kept.
func filterNames(m protoreflect.Message, re *regexp.Regexp) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
			return true
		}
		list := v.List()
		kept := 0
		for i := range list.Len() {
			el := list.Get(i)
			name, ok, nerr := resourceName(el.Message())
			if nerr != nil {
				err = nerr
				return false
			}
			if !ok || re.MatchString(name) {
				list.Set(kept, el)
				kept++
			}
		}
		list.Truncate(kept)
		return true
	})
	return err
}

// resourceName finds the name of the resource an element of a dump
// describes: its own name field (DynamicListener, the secrets), or the
// name of the resource in its Any (clusters, routes; a load assignment is
// named by cluster_name).
func resourceName(el protoreflect.Message) (string, bool, error) {
	fields := el.Descriptor().Fields()
	if fd := fields.ByName("name"); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
		return el.Get(fd).String(), true, nil
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.IsList() || fd.Kind() != protoreflect.MessageKind || fd.Message().FullName() != anyName || !el.Has(fd) {
			continue
		}
		inner, err := el.Get(fd).Message().Interface().(*anypb.Any).UnmarshalNew()
		if err != nil {
			return "", false, fmt.Errorf("%s.%s: %w", el.Descriptor().FullName(), fd.Name(), err)
		}
		ifields := inner.ProtoReflect().Descriptor().Fields()
		for _, n := range []protoreflect.Name{"name", "cluster_name"} {
			if nf := ifields.ByName(n); nf != nil && nf.Kind() == protoreflect.StringKind && !nf.IsList() {
				return inner.ProtoReflect().Get(nf).String(), true, nil
			}
		}
	}
	return "", false, nil
}

// typeName is the message name of a type URL.
func typeName(url string) protoreflect.FullName {
	for i := len(url) - 1; i >= 0; i-- {
		if url[i] == '/' {
			return protoreflect.FullName(url[i+1:])
		}
	}
	return protoreflect.FullName(url)
}

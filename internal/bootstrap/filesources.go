package bootstrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

const configSourceName = protoreflect.FullName("envoy.config.core.v3.ConfigSource")

// expectedResource names the resource type a config source delivers, by
// the field holding it (message full name and field name).
var expectedResource = map[string]protoreflect.FullName{
	"envoy.config.bootstrap.v3.Bootstrap.DynamicResources.lds_config":                            "envoy.config.listener.v3.Listener",
	"envoy.config.bootstrap.v3.Bootstrap.DynamicResources.cds_config":                            "envoy.config.cluster.v3.Cluster",
	"envoy.extensions.filters.network.http_connection_manager.v3.Rds.config_source":              "envoy.config.route.v3.RouteConfiguration",
	"envoy.config.cluster.v3.Cluster.EdsClusterConfig.eds_config":                                "envoy.config.endpoint.v3.ClusterLoadAssignment",
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig.sds_config":                       typeSecret,
	"envoy.extensions.filters.network.http_connection_manager.v3.ScopedRoutes.rds_config_source": "envoy.config.route.v3.RouteConfiguration",
}

// CheckFileSources reads every filesystem xDS source (path_config_source,
// or the legacy path) that m names, directly or through the resources of
// another file (an LDS file's listeners naming an RDS file), and holds
// their resources to what a management server's are held to: parsing,
// the proto validation rules, the allowlist, and the resource type the
// source is for. This is what --mode validate adds to Load, as a server
// would only find a bad file once running (and then keep serving without
// it). Problems in a file are prefixed with its name and the resource
// ("lds.yaml: listener \"l0\": filter_chains[0]: ..."); a source that
// cannot be read is reported at its field path.
func CheckFileSources(m proto.Message) Errors {
	fsc := fileSources{seen: map[string]bool{}}
	fsc.message(m.ProtoReflect(), "", "")
	return fsc.errs
}

type fileSources struct {
	seen map[string]bool
	errs Errors
}

// message finds the config sources in m. where is the prefix of a
// problem's path outside m's own tree (a file and a resource name).
func (f *fileSources) message(m protoreflect.Message, where, path string) {
	md := m.Descriptor()
	if isWellKnown(md) {
		return
	}
	// In field order, not Range's, so that problems come out in a stable order.
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) || (fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind) {
			continue
		}
		v := m.Get(fd)
		fpath := joinPath(path, string(fd.Name()))
		sub := fd.Message()
		if fd.IsMap() {
			sub = fd.MapValue().Message()
		}
		if sub == nil {
			continue
		}
		each := func(v protoreflect.Value, p string) {
			if sub.FullName() == configSourceName {
				f.source(v.Message(), expectedResource[string(md.FullName())+"."+string(fd.Name())], where, p)
			}
			f.value(v.Message(), where, p)
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				each(l.Get(i), fmt.Sprintf("%s[%d]", fpath, i))
			}
		case fd.IsMap():
			mp := v.Map()
			keys := make([]string, 0, mp.Len())
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k.String())
				return true
			})
			sort.Strings(keys)
			for _, k := range keys {
				each(mp.Get(protoreflect.ValueOfString(k).MapKey()), fmt.Sprintf("%s[%q]", fpath, k))
			}
		default:
			each(v, fpath)
		}
	}
}

// value descends into a message, unpacking an Any of a linked type.
func (f *fileSources) value(m protoreflect.Message, where, path string) {
	if m.Descriptor().FullName() != anyFullName {
		f.message(m, where, path)
		return
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(m.Get(anyTypeURLFD).String())
	if err != nil {
		return // not linked, so not supported: the support check says so
	}
	inner := mt.New()
	if proto.Unmarshal(m.Get(anyValueFD).Bytes(), inner.Interface()) != nil {
		return // reported by the support check
	}
	f.message(inner, where, path)
}

// source checks the file of one config source, once per file.
func (f *fileSources) source(src protoreflect.Message, expect protoreflect.FullName, where, path string) {
	fds := src.Descriptor().Fields()
	file, at := "", ""
	if pcs := src.Get(fds.ByName("path_config_source")).Message(); pcs.IsValid() {
		file, at = pcs.Get(pcs.Descriptor().Fields().ByName("path")).String(), joinPath(path, "path_config_source.path")
	} else if p := src.Get(fds.ByName("path")).String(); p != "" {
		file, at = p, joinPath(path, "path")
	}
	if file == "" || f.seen[file] {
		return
	}
	f.seen[file] = true
	fail := func(err error) {
		fe := &FieldError{Path: at, Msg: err.Error()}
		if where == "" {
			f.errs = append(f.errs, fe)
			return
		}
		f.errs = append(f.errs, fmt.Errorf("%s%w", where, fe))
	}
	data, err := os.ReadFile(file)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		fail(fmt.Errorf("cannot read %s: %w", file, err))
		return
	}
	// Parse problems do not stop the check: the resources as parsed are
	// checked too, so that one run reports everything.
	resources, problems := decodeResources(data, strings.EqualFold(filepath.Ext(file), ".json"), file)
	f.errs = append(f.errs, problems...)
	for i, r := range resources {
		if r == nil {
			continue
		}
		name := r.ProtoReflect().Descriptor().FullName()
		if expect != "" && name != expect {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", file, &FieldError{
				Path: fmt.Sprintf("resources[%d]", i),
				Msg:  fmt.Sprintf("%s where %s expects %s", name, at, expect),
			}))
			continue
		}
		kind, rname, _ := XDSResourceName(r)
		if err := CheckXDSResource(r); err != nil {
			for _, e := range err.(Errors) {
				f.errs = append(f.errs, fmt.Errorf("%s: %w", file, e))
			}
		}
		f.message(r.ProtoReflect(), fmt.Sprintf("%s: %s %q: ", file, kind, rname), "")
	}
}

package admin

import (
	"fmt"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// selectResource implements /config_dump?resource=: from every config in
// the dump, take the repeated message field called name (static_clusters,
// dynamic_active_listeners, …) and list its elements as the dump's configs.
func selectResource(cd *adminv3.ConfigDump, name string) (*adminv3.ConfigDump, error) {
	out := &adminv3.ConfigDump{}
	found := false
	for _, a := range cd.GetConfigs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", a.GetTypeUrl(), err)
		}
		fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil || !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
			continue
		}
		found = true
		list := m.ProtoReflect().Get(fd).List()
		for i := range list.Len() {
			el, err := anypb.New(list.Get(i).Message().Interface())
			if err != nil {
				return nil, err
			}
			out.Configs = append(out.Configs, el)
		}
	}
	if !found {
		return nil, fmt.Errorf("no resource %q in any config", name)
	}
	return out, nil
}

package tlscontext

import (
	"errors"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/legate-proxy/legate/internal/xds"
)

// StaticSecrets serves static_resources.secrets: an SdsSecretConfig with a
// name and no sds_config refers to one of them, as in Envoy. Such a watch
// gets its secret at once, through the same validation as an SDS update;
// every other watch goes to next (nil: the bootstrap has no dynamic
// configuration, and the watch is refused).
func StaticSecrets(secrets []*tlsv3.Secret, next xds.Subscriber) (xds.Subscriber, error) {
	s := staticSecrets{byName: make(map[string]*tlsv3.Secret, len(secrets)), next: next}
	for i, sec := range secrets {
		switch {
		case sec.GetName() == "":
			return nil, fmt.Errorf("static_resources.secrets[%d].name: required", i)
		case s.byName[sec.GetName()] != nil:
			return nil, fmt.Errorf("static_resources.secrets[%d].name: %q is not unique", i, sec.GetName())
		}
		s.byName[sec.GetName()] = sec
	}
	return s, nil
}

type staticSecrets struct {
	byName map[string]*tlsv3.Secret
	next   xds.Subscriber
}

func (s staticSecrets) Subscribe(w xds.Watch) (func(), error) {
	if w.Source != nil || w.TypeURL != xds.SecretType {
		if s.next == nil {
			return nil, errors.New("needs dynamic configuration, and the bootstrap has none")
		}
		return s.next.Subscribe(w)
	}
	sec := s.byName[w.Name]
	if sec == nil {
		return nil, fmt.Errorf("unknown static secret %q (static_resources.secrets)", w.Name)
	}
	if err := w.Watcher.Update(&xds.Update{Full: true, Resources: []xds.Resource{{Name: w.Name, Message: sec}}}); err != nil {
		return nil, fmt.Errorf("static_resources.secrets %q: %w", w.Name, err)
	}
	return func() {}, nil
}

package runtime

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// RTDSLayer is a layer whose values come over RTDS: the Runtime resource
// Name, from Source.
type RTDSLayer struct {
	Index  int // the layer's position, for SetRTDS
	Layer  string
	Name   string
	Source *corev3.ConfigSource
}

// RTDSLayers lists the RTDS layers, in order.
func (s *Snapshot) RTDSLayers() []RTDSLayer {
	var out []RTDSLayer
	for i, l := range s.layers {
		if l.rtds != nil {
			out = append(out, RTDSLayer{Index: i, Layer: l.name, Name: l.rtds.GetName(), Source: l.rtds.GetRtdsConfig()})
		}
	}
	return out
}

// SetRTDS replaces RTDS layer index with the Runtime resource's layer and
// publishes the merged values; a bad layer changes nothing.
func (s *Snapshot) SetRTDS(index int, st *structpb.Struct) error {
	values := map[string]string{}
	if err := flatten(values, "", st); err != nil {
		return fmt.Errorf("runtime layer %q: %w", s.layers[index].name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.layers[index].values = values
	s.publish()
	return nil
}

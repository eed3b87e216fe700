package buffer

import (
	"errors"
	"fmt"

	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/httpfilter/perroute"
)

func init() {
	httpfilter.Registry.Register(&bufferv3.Buffer{}, New)
	perroute.Registry.Register(&bufferv3.BufferPerRoute{}, ParsePerRoute)
}

// New builds the filter from its config.
func New(cfg proto.Message, fc *httpfilter.FactoryContext, next httpfilter.Handler) (httpfilter.Handler, error) {
	limit, err := maxRequestBytes(cfg.(*bufferv3.Buffer))
	if err != nil {
		return nil, err
	}
	return &Filter{limit: limit, id: fc.FilterID, next: next, stats: newStats(fc)}, nil
}

func maxRequestBytes(pb *bufferv3.Buffer) (int, error) {
	if pb.GetMaxRequestBytes() == nil {
		return 0, errors.New("max_request_bytes: is required")
	}
	n := pb.GetMaxRequestBytes().GetValue()
	if n == 0 {
		return 0, errors.New("max_request_bytes: must be greater than 0")
	}
	return int(n), nil
}

// perRoute is a decoded BufferPerRoute.
type perRoute struct {
	disabled bool
	limit    int
}

// ParsePerRoute decodes a BufferPerRoute at route table compile time.
func ParsePerRoute(msg proto.Message) (any, error) {
	pb := msg.(*bufferv3.BufferPerRoute)
	switch o := pb.GetOverride().(type) {
	case *bufferv3.BufferPerRoute_Disabled:
		if !o.Disabled {
			return nil, errors.New("disabled: must be true when set")
		}
		return &perRoute{disabled: true}, nil
	case *bufferv3.BufferPerRoute_Buffer:
		if o.Buffer == nil {
			return nil, errors.New("buffer: is required")
		}
		limit, err := maxRequestBytes(o.Buffer)
		if err != nil {
			return nil, fmt.Errorf("buffer.%w", err)
		}
		return &perRoute{limit: limit}, nil
	}
	return nil, errors.New("one of disabled or buffer is required")
}

package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/xds"
)

// filePoll is how often a file source is checked for changes. Envoy's
// example replaces the file with mv, which changes its inode; an in-place
// write changes its mtime or size.
const filePoll = 300 * time.Millisecond

type fileStamp struct {
	ino   uint64
	mtime time.Time
	size  int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path) // follows symlinks (watched_directory swaps)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}

func (f *feed) runFile(ctx context.Context) {
	var last fileStamp
	loaded, missing := false, false
	tick := time.NewTicker(filePoll)
	defer tick.Stop()
	for {
		st, err := stampOf(f.path)
		switch {
		case err != nil:
			if !missing {
				f.c.log.Warn("xds file source unreadable; keeping the last good config", "path", f.path, "error", err)
				missing = true
			}
		case !loaded || st != last:
			last, loaded, missing = st, true, false
			f.loadFile()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loadFile reads, decodes and delivers the file; a bad file is refused
// like a NACK: logged, update_rejected counted, the last good kept.
func (f *feed) loadFile() {
	ts := f.typesInOrder()[0]
	f.deliverMu.Lock()
	defer f.deliverMu.Unlock()
	resp, err := readDiscoveryResponse(f.path)
	var res []xds.Resource
	if err == nil {
		res, err = decodeSotw(ts.typeURL, resp.GetVersionInfo(), resp.GetResources())
		if err != nil {
			err = fmt.Errorf("%s: %w", f.path, err)
		}
	}
	if err != nil {
		f.reject(ts)
		f.c.log.Warn("xds file rejected; keeping the last good config", "path", f.path, "type", ts.typeURL, "error", err)
		return
	}
	if err := f.deliverSotw(ts, resp.GetVersionInfo(), res); err != nil {
		f.c.log.Warn("xds file rejected; keeping the last good config", "path", f.path, "type", ts.typeURL, "version", resp.GetVersionInfo(), "error", err)
		return
	}
	f.c.log.Debug("xds file loaded", "path", f.path, "type", ts.typeURL, "version", resp.GetVersionInfo(), "resources", len(res))
}

// readDiscoveryResponse parses a DiscoveryResponse in YAML or JSON (by
// extension, as Envoy does).
func readDiscoveryResponse(path string) (*discoveryv3.DiscoveryResponse, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(filepath.Ext(path), ".json") {
		data, err = yaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	resp := &discoveryv3.DiscoveryResponse{}
	if tree == nil {
		return resp, nil
	}
	tree = listify(tree, resp.ProtoReflect().Descriptor())
	if data, err = json.Marshal(tree); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := protojson.Unmarshal(data, resp); err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "proto: "))
	}
	return resp, nil
}

// listify wraps a single value given for a repeated field in a list.
// Envoy's YAML loader accepts that, and its dynamic-config-fs example's
// lds.yaml relies on it (filter_chains[0].filters is a single object).
func listify(v any, md protoreflect.MessageDescriptor) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if md.FullName() == "google.protobuf.Any" {
		url, _ := obj["@type"].(string)
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
		if err != nil {
			return v // protojson reports it
		}
		md = mt.Descriptor()
	}
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return v // well-known types have their own JSON forms
	}
	fields := md.Fields()
	for k, val := range obj {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		if fd == nil {
			continue
		}
		switch {
		case fd.IsList():
			list, isList := val.([]any)
			if !isList && val != nil {
				list = []any{val}
			}
			if fd.Message() != nil {
				for i := range list {
					list[i] = listify(list[i], fd.Message())
				}
			}
			if list != nil {
				obj[k] = list
			}
		case fd.IsMap():
			if m, isMap := val.(map[string]any); isMap && fd.MapValue().Message() != nil {
				for mk := range m {
					m[mk] = listify(m[mk], fd.MapValue().Message())
				}
			}
		case fd.Message() != nil:
			obj[k] = listify(val, fd.Message())
		}
	}
	return obj
}

package client

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/bootstrap"
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
	if err != nil {
		f.reject(ts)
	} else {
		err = f.applySotw(ts, resp.GetVersionInfo(), resp.GetResources())
	}
	if err != nil {
		f.c.log.Warn("xds file rejected; keeping the last good config", "path", f.path, "type", ts.typeURL, "version", resp.GetVersionInfo(), "error", err)
		return
	}
	f.c.log.Debug("xds file loaded", "path", f.path, "type", ts.typeURL, "version", resp.GetVersionInfo(), "resources", len(resp.GetResources()))
}

// readDiscoveryResponse parses a DiscoveryResponse in YAML or JSON (by
// extension, as Envoy does) with the bootstrap's decoder, so errors carry
// the field path and a typed_config of an unsupported type reaches the
// support check (which refuses it by name) instead of failing to parse.
func readDiscoveryResponse(path string) (*discoveryv3.DiscoveryResponse, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	version, msgs, err := bootstrap.DecodeResources(data, strings.EqualFold(filepath.Ext(path), ".json"), path)
	if err != nil {
		return nil, err
	}
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: version}
	for i, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("%s: resources[%d]: %w", path, i, err)
		}
		resp.Resources = append(resp.Resources, a)
	}
	return resp, nil
}

package client

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

// TestWatchFromUpdate: watchers open and cancel watches from inside their
// own Update, as the cluster manager does with EDS: a CDS watcher
// subscribes EDS for each cluster and cancels it for removed ones and opens
// another CDS watch on the type being delivered; an EDS watcher cancels
// itself. Nothing deadlocks and the watches opened mid-delivery are brought
// up to date.
func TestWatchFromUpdate(t *testing.T) {
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("a"), clusterRes("b")},
		resource.EndpointType: {endpoints("a", 1), endpoints("b", 2)},
	}))
	s := startCP(t, cache)
	c, _ := newClient(t, apiSource(corev3.ApiConfigSource_GRPC, s.addr))

	var mu sync.Mutex // guards recs for the test; never held across Subscribe
	recs := map[string]*rec{}
	put := func(k string, r *rec) { mu.Lock(); recs[k] = r; mu.Unlock() }
	get := func(k string) *rec {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			mu.Lock()
			r := recs[k]
			mu.Unlock()
			if r != nil {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("no watch %q was opened", k)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	cancels := map[string]func(){} // touched only by CDS Updates, which never overlap
	cds := xds.WatcherFunc(func(u *xds.Update) error {
		for _, res := range u.Resources {
			if cancels[res.Name] != nil {
				continue
			}
			r := newRec()
			var self atomic.Pointer[func()]
			cancel, err := c.Subscribe(xds.Watch{Source: adsSource, TypeURL: xds.EndpointType, Name: res.Name,
				Watcher: xds.WatcherFunc(func(eu *xds.Update) error {
					r.Update(eu)
					if eu.Resources[0].Name == "b" {
						(*self.Load())() // cancel itself from inside its Update
					}
					return nil
				})})
			if err != nil {
				return err
			}
			self.Store(&cancel)
			cancels[res.Name] = cancel
			put("eds "+res.Name, r)
		}
		for _, n := range u.Removed {
			cancels[n]() // b already cancelled itself: cancel is idempotent
			delete(cancels, n)
		}
		r := newRec()
		if _, err := c.Subscribe(xds.Watch{Source: adsSource, TypeURL: xds.ClusterType, Watcher: r}); err != nil {
			return err
		}
		put("cds "+u.Version, r)
		return nil
	})
	if _, err := c.Subscribe(xds.Watch{Source: adsSource, TypeURL: xds.ClusterType, Watcher: cds}); err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())

	get("eds a").waitFor(t, atVersion("v1"))
	get("eds b").waitFor(t, atVersion("v1"))
	// A CDS watch opened during the first CDS delivery gets it too.
	if u := get("cds v1").waitFor(t, atVersion("v1")); names(u) != "a,b" {
		t.Fatalf("watch opened in the v1 delivery got %q", names(u))
	}
	// b's self-cancel reaches the server.
	s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.EndpointType && slices.Equal(r.GetResourceNames(), []string{"a"})
	})

	setSnap(t, cache, snapshot(t, "v2", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("a")},
		resource.EndpointType: {endpoints("a", 3)},
	}))
	if u := get("cds v1").waitFor(t, atVersion("v2")); names(u) != "a" || !slices.Equal(u.Removed, []string{"b"}) {
		t.Fatalf("v2 to the v1 watch: %q removed %v", names(u), u.Removed)
	}
	// Opened once v1 was cached: brought up to date from the cache.
	if u := get("cds v2").waitFor(t, atVersion("v2")); names(u) != "a" || !u.Full {
		t.Fatalf("watch opened in the v2 delivery got %+v", u)
	}
	get("eds a").waitFor(t, atVersion("v2"))
}

// TestCloseWaitsForCallbacks: Close returns only once a watcher call in
// progress (here an initial_fetch_timeout callback) has returned.
func TestCloseWaitsForCallbacks(t *testing.T) {
	c, _ := newClient(t, apiSource(corev3.ApiConfigSource_GRPC, "127.0.0.1:1"))
	entered := make(chan struct{})
	var finished atomic.Bool
	_, err := c.Subscribe(xds.Watch{Source: withTimeout(adsSource, time.Millisecond), TypeURL: xds.ClusterType,
		Watcher: xds.WatcherFunc(func(u *xds.Update) error {
			close(entered)
			// Still running when Close begins: wait until it has.
			for {
				c.mu.Lock()
				closed := c.closed
				c.mu.Unlock()
				if closed {
					break
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond)
			finished.Store(true)
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("initial_fetch_timeout never fired")
	}
	c.Close()
	if !finished.Load() {
		t.Fatal("Close returned while a watcher was still being called")
	}
	if _, err := c.Subscribe(xds.Watch{Source: adsSource, TypeURL: xds.ClusterType, Watcher: newRec()}); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
}

// statNames lists the store's stats matching re.
func statNames(st *stats.Store, re string) string {
	var b strings.Builder
	stats.WriteText(&b, st, regexp.MustCompile(re), false)
	return b.String()
}

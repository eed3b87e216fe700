package controlplane

import (
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// HoldNACKs wraps a snapshot cache so that a state-of-the-world NACK of the
// version being served is not answered with that same version again. The
// plain cache would: a NACK carries the last accepted version, which differs
// from the snapshot's, so the rejected resources go straight back and the
// proxy rejects them in a loop. The watch instead waits for the next
// snapshot. A NACK of an older version (the snapshot moved on since it was
// sent) is answered at once with the current one. Delta needs no help: the
// server records what it sent, NACKed or not.
func HoldNACKs(c cache.SnapshotCache, hash cache.NodeHash) cache.SnapshotCache {
	return nackHolding{SnapshotCache: c, hash: hash}
}

type nackHolding struct {
	cache.SnapshotCache
	hash cache.NodeHash
}

func (c nackHolding) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	if req.GetErrorDetail() != nil {
		if snap, err := c.GetSnapshot(c.hash.ID(req.GetNode())); err == nil {
			if cur := snap.GetVersion(req.GetTypeUrl()); cur != "" && rejectedVersion(sub) == cur {
				r := proto.Clone(req).(*discovery.DiscoveryRequest)
				r.VersionInfo = cur
				req = r
			}
		}
	}
	return c.SnapshotCache.CreateWatch(req, sub, ch)
}

// rejectedVersion is the version of the response a NACK refers to: the
// server accepts a request only for the last nonce it sent, and records
// the version of every resource in that response.
func rejectedVersion(sub cache.Subscription) string {
	for _, v := range sub.ReturnedResources() {
		return v
	}
	return ""
}

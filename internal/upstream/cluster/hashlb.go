package cluster

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/legate-proxy/legate/internal/upstream/lb"
)

// decodeHashLB reads ring_hash_lb_config and maglev_lb_config; each is
// only valid with its policy, as Envoy checks.
func decodeHashLB(pc *clusterv3.Cluster, c *lb.Config) error {
	if rc := pc.GetRingHashLbConfig(); rc != nil {
		if c.Policy != lb.RingHash {
			return fieldErr("ring_hash_lb_config", "is only valid with lb_policy RING_HASH")
		}
		if rc.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			return fieldErr("ring_hash_lb_config.hash_function", "%v is not supported (XX_HASH is)", rc.GetHashFunction())
		}
		c.MinRingSize, c.MaxRingSize = lb.DefaultMinRingSize, lb.DefaultMaxRingSize
		if v := rc.GetMinimumRingSize(); v != nil {
			c.MinRingSize = v.GetValue()
		}
		if v := rc.GetMaximumRingSize(); v != nil {
			c.MaxRingSize = v.GetValue()
		}
		if c.MinRingSize > c.MaxRingSize {
			return fieldErr("ring_hash_lb_config", "minimum_ring_size %d is above maximum_ring_size %d", c.MinRingSize, c.MaxRingSize)
		}
	}
	if mc := pc.GetMaglevLbConfig(); mc != nil {
		if c.Policy != lb.Maglev {
			return fieldErr("maglev_lb_config", "is only valid with lb_policy MAGLEV")
		}
		if v := mc.GetTableSize(); v != nil {
			n := v.GetValue()
			if !isPrime(n) {
				return fieldErr("maglev_lb_config.table_size", "must be a prime number, got %d", n)
			}
			c.TableSize = n
		}
	}
	return nil
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// UsesHash reports whether the cluster's balancer places requests by their
// hash (RING_HASH, MAGLEV), so the router computes one.
func (c *Cluster) UsesHash() bool { return c.LB.Policy == lb.RingHash || c.LB.Policy == lb.Maglev }

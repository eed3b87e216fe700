// Package rbac is Envoy's RBAC network filter
// (type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC): it
// allows or denies a connection by its addresses, SNI, peer certificate,
// dynamic metadata and filter state, with the engine of internal/rbac.
// Shadow rules are evaluated too but only counted and recorded in the
// connection's dynamic metadata.
//
// Envoy decides when the first byte arrives (ONE_TIME_ON_FIRST_BYTE), once,
// because its TLS handshake may not be done at connection start. Legate's
// chain starts after the handshake, so a policy that reads neither dynamic
// metadata nor filter state (which later filters may still set) decides at
// connection start, with the same result: a denied connection never
// reaches the terminal filter (the TCP proxy does not even connect
// upstream). Policies that read them decide on the first byte, as in
// Envoy; CONTINUOUS decides on every read.
package rbac

import (
	"errors"
	"fmt"

	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/rbac"
	"github.com/legate-proxy/legate/internal/stats"
)

func init() {
	networkfilter.Registry.Register(&rbacnetv3.RBAC{}, New)
}

// Names in the dynamic metadata, as Envoy's.
const (
	metadataNamespace  = "envoy.filters.network.rbac"
	shadowPolicyField  = "shadow_effective_policy_id"
	shadowResultField  = "shadow_engine_result"
	commonNamespace    = "envoy.common"
	accessLogHintField = "access_log_hint"
	resultAllowed      = "allowed"
	resultDenied       = "denied"
)

// Config is a compiled RBAC network filter; it is also the instance of
// connections that need no state of their own.
type Config struct {
	networkfilter.PassThrough
	engine, shadow *rbac.Engine // nil when absent
	continuous     bool
	// atStart: decide in OnNewConnection (see the package comment).
	atStart bool
	// The shadow result's metadata keys, with shadow_rules_stat_prefix.
	shadowPolicyKey, shadowResultKey string
	stats                            *Stats
}

// New is the network filter factory.
func New(cfg proto.Message, fc *networkfilter.FactoryContext) (networkfilter.Filter, error) {
	return Build(cfg.(*rbacnetv3.RBAC), fc)
}

// Build compiles an RBAC network filter config.
func Build(pb *rbacnetv3.RBAC, fc *networkfilter.FactoryContext) (*Config, error) {
	if pb.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: must not be empty")
	}
	switch {
	case pb.GetMatcher() != nil:
		return nil, errors.New("matcher: the matcher API form is not supported; use rules")
	case pb.GetShadowMatcher() != nil:
		return nil, errors.New("shadow_matcher: the matcher API form is not supported; use shadow_rules")
	case pb.GetDelayDeny() != nil:
		return nil, errors.New("delay_deny: is not supported")
	}
	c := &Config{
		continuous:      pb.GetEnforcementType() == rbacnetv3.RBAC_CONTINUOUS,
		shadowPolicyKey: pb.GetShadowRulesStatPrefix() + shadowPolicyField,
		shadowResultKey: pb.GetShadowRulesStatPrefix() + shadowResultField,
	}
	switch pb.GetEnforcementType() {
	case rbacnetv3.RBAC_ONE_TIME_ON_FIRST_BYTE, rbacnetv3.RBAC_CONTINUOUS:
	default:
		return nil, fmt.Errorf("enforcement_type: %v is not supported", pb.GetEnforcementType())
	}
	var err error
	if pb.GetRules() != nil {
		if c.engine, err = rbac.Compile(pb.GetRules(), "rules", rbac.Options{}); err != nil {
			return nil, err
		}
	}
	if pb.GetShadowRules() != nil {
		if c.shadow, err = rbac.Compile(pb.GetShadowRules(), "shadow_rules", rbac.Options{}); err != nil {
			return nil, err
		}
	}
	dynamic := c.engine != nil && c.engine.UsesDynamic() || c.shadow != nil && c.shadow.UsesDynamic()
	c.atStart = !c.continuous && !dynamic
	st := fc.Stats
	if st == nil {
		st = stats.NewStore()
	}
	c.stats = newStats(st, pb.GetStatPrefix(), pb.GetShadowRulesStatPrefix())
	return c, nil
}

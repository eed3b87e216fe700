package hcm

import (
	"fmt"
	"net/netip"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	customhdrv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/original_ip_detection/custom_header/v3"
	xffv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/original_ip_detection/xff/v3"

	"github.com/legate-proxy/legate/internal/cidr"
	"github.com/legate-proxy/legate/internal/http/message"
)

// Which requests are internal, and who the client is: Envoy's
// internal_address_config and original_ip_detection_extensions.

// InternalAddresses is internal_address_config.
type InternalAddresses struct {
	// Ranges, when set, are the internal addresses; otherwise RFC 1918,
	// loopback and unique-local ones are.
	Ranges cidr.Set
	// UnixSockets makes requests on unix domain sockets internal.
	UnixSockets bool
}

// Contains reports whether a is internal; an invalid address is a unix
// socket peer.
func (ia *InternalAddresses) Contains(a netip.Addr) bool {
	if !a.IsValid() {
		return ia.UnixSockets
	}
	if len(ia.Ranges) > 0 {
		return ia.Ranges.Contains(a)
	}
	return isInternal(a)
}

// ipDetector is one original IP detection extension.
type ipDetector struct {
	header string // custom_header; "" for xff
	// xff: the client is the hops+1-th address from the right, or with
	// trustedCIDRs the rightmost untrusted one.
	hops       uint32
	trusted    cidr.Set
	skipAppend bool
	// custom_header: the detected address counts for internal checks.
	allowTrusted bool
	// rejectStatus answers a request whose header is missing or bad; 0
	// lets the next extension try.
	rejectStatus int
}

// detection is what an extension found.
type detection struct {
	addr netip.Addr
	// trustChecks says whether addr may make the request internal.
	trustChecks bool
	skipAppend  bool
	reject      int
}

func (d *ipDetector) detect(req *message.Request, peer netip.Addr) (detection, bool) {
	if d.header != "" {
		if v, ok := req.Header.Get(d.header); ok {
			if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
				return detection{addr: a, trustChecks: d.allowTrusted}, true
			}
		}
		return detection{reject: d.rejectStatus}, d.rejectStatus != 0
	}
	xff := req.Header.Value("x-forwarded-for")
	if len(d.trusted) > 0 {
		if xff == "" || !d.trusted.Contains(peer) {
			return detection{}, false
		}
		a, ok := lastUntrusted(xff, d.trusted)
		return detection{addr: a, trustChecks: true, skipAppend: d.skipAppend}, ok
	}
	a, ok := xffAddr(xff, int(d.hops)+1)
	if !ok {
		return detection{}, false
	}
	return detection{addr: a, trustChecks: !strings.Contains(xff, ","), skipAppend: d.skipAppend}, true
}

// lastUntrusted walks x-forwarded-for from the right and returns the
// first address outside trusted, or the leftmost when all are trusted.
func lastUntrusted(xff string, trusted cidr.Set) (netip.Addr, bool) {
	var a netip.Addr
	for xff != "" {
		entry := xff
		if i := strings.LastIndexByte(xff, ','); i >= 0 {
			entry, xff = xff[i+1:], xff[:i]
		} else {
			xff = ""
		}
		p, err := netip.ParseAddr(strings.TrimSpace(entry))
		if err != nil {
			return netip.Addr{}, false
		}
		a = p
		if !trusted.Contains(p) {
			break
		}
	}
	return a, a.IsValid()
}

// detectClient runs the original IP detection extensions in order; the
// first that finds an address (or rejects) wins. Without extensions,
// Envoy's default applies: the xff one with xff_num_trusted_hops, appending
// nothing.
func (cfg *Config) detectClient(req *message.Request, peer netip.Addr) (detection, bool) {
	if len(cfg.ipDetectors) == 0 {
		d := ipDetector{hops: cfg.XffNumTrustedHops, skipAppend: true}
		return d.detect(req, peer)
	}
	for i := range cfg.ipDetectors {
		if d, ok := cfg.ipDetectors[i].detect(req, peer); ok {
			return d, true
		}
	}
	return detection{}, false
}

// trustConfig compiles internal_address_config and
// original_ip_detection_extensions.
func trustConfig(pb *hcmv3.HttpConnectionManager, c *Config) error {
	if iac := pb.GetInternalAddressConfig(); iac != nil {
		rs, err := cidr.ParseSet(iac.GetCidrRanges(), "internal_address_config.cidr_ranges")
		if err != nil {
			return err
		}
		c.Internal = InternalAddresses{Ranges: rs, UnixSockets: iac.GetUnixSockets()}
	}
	exts := pb.GetOriginalIpDetectionExtensions()
	if len(exts) > 0 && c.UseRemoteAddress {
		return fmt.Errorf("original_ip_detection_extensions: may not be combined with use_remote_address")
	}
	for i, e := range exts {
		path := fmt.Sprintf("original_ip_detection_extensions[%d]", i)
		msg, err := e.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s.typed_config: %w", path, err)
		}
		switch m := msg.(type) {
		case *xffv3.XffConfig:
			d := ipDetector{hops: m.GetXffNumTrustedHops(), skipAppend: true}
			if sa := m.GetSkipXffAppend(); sa != nil {
				d.skipAppend = sa.GetValue()
			}
			if tc := m.GetXffTrustedCidrs(); tc != nil {
				if d.hops > 0 {
					return fmt.Errorf("%s: only one of xff_num_trusted_hops and xff_trusted_cidrs may be set", path)
				}
				if d.trusted, err = cidr.ParseSet(tc.GetCidrs(), path+".xff_trusted_cidrs.cidrs"); err != nil {
					return err
				}
			}
			c.ipDetectors = append(c.ipDetectors, d)
		case *customhdrv3.CustomHeaderConfig:
			name := strings.ToLower(m.GetHeaderName())
			if name == "" {
				return fmt.Errorf("%s.header_name: must not be empty", path)
			}
			d := ipDetector{header: name, allowTrusted: m.GetAllowExtensionToSetAddressAsTrusted()}
			if rs := m.GetRejectWithStatus(); rs != nil {
				d.rejectStatus = int(rs.GetCode())
				if d.rejectStatus < 200 || d.rejectStatus > 599 {
					return fmt.Errorf("%s.reject_with_status.code: %d is not a valid status", path, d.rejectStatus)
				}
			}
			c.ipDetectors = append(c.ipDetectors, d)
		default:
			return fmt.Errorf("%s.typed_config: %s is not an original IP detection extension", path, msg.ProtoReflect().Descriptor().FullName())
		}
	}
	return nil
}

// controlHeaders are the x-envoy-* request headers that steer the router,
// stripped from requests that are not internal (Envoy's list).
var controlHeaders = []string{
	"x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries",
	"x-envoy-retriable-status-codes", "x-envoy-retriable-header-names",
	"x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-timeout-ms",
	"x-envoy-upstream-rq-per-try-timeout-ms", "x-envoy-upstream-rq-timeout-alt-response",
	"x-envoy-expected-rq-timeout-ms", "x-envoy-force-trace", "x-envoy-ip-tags",
	"x-envoy-original-url", "x-envoy-hedge-on-per-try-timeout",
}

// stripControlHeaders removes controlHeaders without allocating.
func stripControlHeaders(h *message.Headers) {
	s := *h
	j := 0
	for _, f := range s {
		if !isControlHeader(f.Name) {
			s[j] = f
			j++
		}
	}
	clear(s[j:])
	*h = s[:j]
}

func isControlHeader(name string) bool {
	if !strings.HasPrefix(name, "x-envoy-") {
		return false
	}
	for _, c := range controlHeaders {
		if name == c {
			return true
		}
	}
	return false
}

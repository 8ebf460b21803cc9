package driver

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/errkind"
)

// Option keys understood in `docker network create -o`.
const (
	OptVNI = "vxnet.vni"
	OptMTU = "com.docker.network.driver.mtu"
	// OptEgress chooses how containers reach outside the overlay:
	// EgressGwbridge (default), Docker's docker_gwbridge endpoint per
	// container, or EgressOwn, one veth pair per network and host
	// (dataplane/egress.go).
	OptEgress = "vxnet.egress"

	EgressGwbridge = "gwbridge"
	EgressOwn      = "own"

	genericOptions = "com.docker.network.generic"
	internalOption = "com.docker.network.internal"

	maxVNI = 1<<24 - 1
	minMTU = 576 // smallest MTU every IPv4 host must accept
	maxMTU = 65535
	// maxOptionLen bounds option values before they reach the kernel or
	// the store.
	maxOptionLen = 64
)

var validOptions = []string{OptVNI, OptMTU, OptEgress}

// NetworkOptions is what `-o` and Docker's own flags say about a network.
type NetworkOptions struct {
	VNI      uint32 `json:"vni,omitempty"` // 0: allocate one
	MTU      int    `json:"mtu,omitempty"` // 0: underlay MTU minus VXLAN overhead
	Internal bool   `json:"internal,omitempty"`
	// Egress is EgressOwn or "" (EgressGwbridge).
	Egress string `json:"egress,omitempty"`
}

// OwnEgress tells whether the network's containers leave by vxnet's own
// egress: egress=own and not --internal (which has no egress at all).
func (o NetworkOptions) OwnEgress() bool { return o.Egress == EgressOwn && !o.Internal }

// ParseNetworkOptions validates CreateNetwork's Options. Unknown `-o`
// options are an error that lists the valid ones. Errors are
// errkind.BadRequest.
func ParseNetworkOptions(opts map[string]interface{}) (o NetworkOptions, err error) {
	defer func() { err = errkind.Mark(err, errkind.BadRequest) }()
	if v, ok := opts[internalOption]; ok {
		b, err := asBool(v)
		if err != nil {
			return o, fmt.Errorf("option %q: %w", internalOption, err)
		}
		o.Internal = b
	}
	generic, err := genericMap(opts[genericOptions])
	if err != nil {
		return o, err
	}
	keys := make([]string, 0, len(generic))
	for k := range generic {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := o.set(k, generic[k]); err != nil {
			return o, err
		}
	}
	return o, nil
}

func (o *NetworkOptions) set(k, v string) error {
	if len(v) > maxOptionLen {
		return fmt.Errorf("option %q: value of %d characters is too long (max %d)", k, len(v), maxOptionLen)
	}
	switch k {
	case OptVNI:
		n, err := parseRange(v, 1, maxVNI)
		if err != nil {
			return fmt.Errorf("option %q: %w", k, err)
		}
		o.VNI = uint32(n)
	case OptMTU:
		n, err := parseRange(v, minMTU, maxMTU)
		if err != nil {
			return fmt.Errorf("option %q: %w", k, err)
		}
		o.MTU = n
	case OptEgress:
		switch v {
		case EgressGwbridge:
			o.Egress = ""
		case EgressOwn:
			o.Egress = EgressOwn
		default:
			return fmt.Errorf("option %q: unknown value %q: want %q (Docker's docker_gwbridge, the default) or %q (vxnet's own egress, no -p)", k, v, EgressGwbridge, EgressOwn)
		}
	default:
		return fmt.Errorf("unknown option %q: vxnet accepts %s", k, strings.Join(validOptions, ", "))
	}
	return nil
}

func parseRange(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

// genericMap reads the `-o` map, which arrives as a JSON object of strings.
func genericMap(v interface{}) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("option %q: want an object of strings, got %T", genericOptions, v)
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		s, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("option %q: value %v is not a string", k, val)
		}
		out[k] = s
	}
	return out, nil
}

func asBool(v interface{}) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		return strconv.ParseBool(b)
	}
	return false, fmt.Errorf("want a boolean, got %T", v)
}

// Subnets is the addressing of a network, from IPAM data.
type Subnets struct {
	Pools    []netip.Prefix // v4 first, then v6
	Gateways []netip.Prefix // gateway address with the pool's prefix length
	// OwnIPAM is set when every pool came from vxnet's IPAM (--ipam-driver
	// vxnet): only then does the IPAM's pool membership say whether Docker
	// still has the network.
	OwnIPAM bool
}

// ParseIPAMData validates CreateNetwork's IPv4Data and IPv6Data: vxnet needs
// at least one pool, and at most one per family. owns tells vxnet's IPAM's
// address spaces (Pools.OwnsAddressSpace). Errors are errkind.BadRequest.
func ParseIPAMData(v4, v6 []*network.IPAMData, owns func(space string) bool) (s Subnets, err error) {
	defer func() { err = errkind.Mark(err, errkind.BadRequest) }()
	s = Subnets{OwnIPAM: true}
	for _, fam := range []struct {
		name string
		data []*network.IPAMData
		is6  bool
	}{{"IPv4", v4, false}, {"IPv6", v6, true}} {
		if len(fam.data) > 1 {
			return s, fmt.Errorf("vxnet supports one %s subnet per network, got %d", fam.name, len(fam.data))
		}
		for _, d := range fam.data {
			if d == nil {
				return s, fmt.Errorf("empty %s data", fam.name)
			}
			pool, gw, err := parsePool(d, fam.is6)
			if err != nil {
				return s, fmt.Errorf("%s data: %w", fam.name, err)
			}
			s.Pools = append(s.Pools, pool)
			s.OwnIPAM = s.OwnIPAM && owns(d.AddressSpace)
			if gw.IsValid() {
				s.Gateways = append(s.Gateways, gw)
			}
		}
	}
	if len(s.Pools) == 0 {
		return s, fmt.Errorf("network has no subnet: create it with --ipam-driver vxnet --subnet <cidr>")
	}
	return s, nil
}

func parsePool(d *network.IPAMData, is6 bool) (netip.Prefix, netip.Prefix, error) {
	pool, err := netip.ParsePrefix(d.Pool)
	if err != nil {
		return pool, netip.Prefix{}, fmt.Errorf("bad pool %q: %w", d.Pool, err)
	}
	if pool.Addr().Is6() != is6 || pool != pool.Masked() {
		return pool, netip.Prefix{}, fmt.Errorf("bad pool %q", d.Pool)
	}
	if d.Gateway == "" {
		return pool, netip.Prefix{}, nil
	}
	gw, err := netip.ParsePrefix(d.Gateway)
	if err != nil {
		return pool, gw, fmt.Errorf("bad gateway %q: %w", d.Gateway, err)
	}
	if !pool.Contains(gw.Addr()) {
		return pool, gw, fmt.Errorf("gateway %s is not in pool %s", gw.Addr(), pool)
	}
	return pool, gw, nil
}

package ipam

import (
	"net/netip"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store/keys"
)

// Pool is one address pool as kept in the store: cluster-wide, identified by
// its subnet, shared by every host that has a network on it.
type Pool struct {
	Subnet  netip.Prefix `json:"subnet"`
	Range   netip.Prefix `json:"range,omitempty"`   // --ip-range; zero means the whole subnet
	Gateway netip.Addr   `json:"gateway,omitempty"` // set by the first gateway request
	// Hosts holds the IDs of the hosts that requested the pool; the pool
	// goes when the last one releases it.
	Hosts map[string]bool `json:"hosts"`
	// Refs counts, per host, requests beyond the first. Only global scope
	// (swarm) has them: a manager that also runs tasks requests the pool
	// once for the swarm allocator and once for its own network.
	Refs map[string]int `json:"refs,omitempty"`
	// Setup holds the hosts that requested the pool and have not created
	// their network on it yet (SetupDone). Docker reserves --aux-address
	// addresses in that phase, with a plain RequestAddress; those leases
	// are shared by every host, where a container's static --ip is not.
	Setup map[string]bool `json:"setup,omitempty"`
	// Nonce is fresh in every write (see the package doc).
	Nonce string `json:"nonce,omitempty"`
}

// removed tells a pool whose last user released it: its leases and then
// its record are being deleted (IPAM.finishRemoval).
func (p *Pool) removed() bool { return len(p.Hosts) == 0 }

// uses tells whether host is in any of the pool's memberships.
func (p *Pool) uses(host string) bool {
	return p.Hosts[host] || p.Setup[host] || p.Refs[host] > 0
}

// without returns a copy of p with host dropped from every membership.
func (p *Pool) without(host string) *Pool {
	next := *p
	next.Hosts = copyWithout(p.Hosts, host)
	next.Setup = copyWithout(p.Setup, host)
	if len(next.Setup) == 0 {
		next.Setup = nil
	}
	next.Refs = nil
	for h, n := range p.Refs {
		if h != host {
			if next.Refs == nil {
				next.Refs = map[string]int{}
			}
			next.Refs[h] = n
		}
	}
	return &next
}

func copyWithout(m map[string]bool, k string) map[string]bool {
	out := make(map[string]bool, len(m))
	for h := range m {
		if h != k {
			out[h] = true
		}
	}
	return out
}

// ParsePoolID is the inverse of keys.PoolID, the IDs this IPAM gives
// Docker; anything else is an unknown pool (errkind.NotFound).
func ParsePoolID(id string) (netip.Prefix, error) {
	p, ok := keys.ParsePoolID(id)
	if !ok {
		return netip.Prefix{}, errkind.Errorf(errkind.NotFound, "unknown pool ID %q", id)
	}
	return p, nil
}

// parseSubnet accepts a CIDR whose address is the network address.
func parseSubnet(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errkind.Errorf(errkind.BadRequest, "bad %s %q: %w", what, s, err)
	}
	if p.Addr().Zone() != "" || p != p.Masked() {
		return netip.Prefix{}, errkind.Errorf(errkind.BadRequest, "bad %s %q: not a network address (did you mean %s?)", what, s, p.Masked())
	}
	return p, nil
}

func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// allocatable tells whether a may be handed to a container: inside the
// range, not the network or IPv4 broadcast address, not the gateway.
func (p *Pool) allocatable(a netip.Addr) bool {
	return p.effectiveRange().Contains(a) && a != p.Gateway && p.special(a) == ""
}

// special names what a is if it is an address of the subnet no host may
// have: "network address" (in IPv6 the subnet-router anycast address) or
// "broadcast address" (IPv4, subnets larger than a /31); "" otherwise.
func (p *Pool) special(a netip.Addr) string {
	switch {
	case a == p.Subnet.Addr() && (a.Is6() || p.Subnet.Bits() < 31):
		return "network address"
	case a.Is4() && p.Subnet.Bits() < 31 && a == lastAddr(p.Subnet):
		return "broadcast address"
	}
	return ""
}

func (p *Pool) effectiveRange() netip.Prefix {
	if p.Range.IsValid() {
		return p.Range
	}
	return p.Subnet
}

// defaultGateway is the first host address of the subnet: the same on
// every host without coordination.
func (p *Pool) defaultGateway() netip.Addr {
	return p.Subnet.Addr().Next()
}

// nextFree returns the first allocatable address at or after start
// (wrapping once around the range) that is not in taken. At most
// len(taken)+4 addresses of the walk can be excluded (taken, gateway,
// network, broadcast), so the walk is short even in an IPv6 /64.
func (p *Pool) nextFree(start netip.Addr, taken map[netip.Addr]bool) (netip.Addr, bool) {
	r := p.effectiveRange()
	first, last := r.Addr(), lastAddr(r)
	if !r.Contains(start) {
		start = first
	}
	a := start
	for range len(taken) + 5 {
		if p.allocatable(a) && !taken[a] {
			return a, true
		}
		if a == last {
			a = first
		} else {
			a = a.Next()
		}
		if a == start {
			break
		}
	}
	return netip.Addr{}, false
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 7; j >= 0; j-- {
			if i*8+(7-j) >= bits {
				b[i] |= 1 << j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

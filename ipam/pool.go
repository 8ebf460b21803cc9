package ipam

import (
	"fmt"
	"net/netip"
	"strings"
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
}

// PoolID is the ID Docker is given for a subnet: stable across hosts and
// usable as one store key segment.
func PoolID(subnet netip.Prefix) string {
	return strings.ReplaceAll(subnet.Masked().String(), "/", "_")
}

// ParsePoolID is the inverse of PoolID.
func ParsePoolID(id string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.Replace(id, "_", "/", 1))
	if err != nil || PoolID(p) != id {
		return netip.Prefix{}, fmt.Errorf("unknown pool ID %q", id)
	}
	return p, nil
}

// parseSubnet accepts a CIDR whose address is the network address.
func parseSubnet(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad %s %q: %w", what, s, err)
	}
	if p.Addr().Zone() != "" || p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("bad %s %q: not a network address (did you mean %s?)", what, s, p.Masked())
	}
	return p, nil
}

func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// allocatable tells whether a may be handed to a container: inside the
// range, not the IPv4 network or broadcast address, not the gateway.
func (p *Pool) allocatable(a netip.Addr) bool {
	r := p.effectiveRange()
	if !r.Contains(a) || a == p.Gateway {
		return false
	}
	if a.Is4() && p.Subnet.Bits() < 31 {
		if a == p.Subnet.Addr() || a == lastAddr(p.Subnet) {
			return false
		}
	}
	if a.Is6() && a == p.Subnet.Addr() {
		return false // subnet-router anycast
	}
	return true
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

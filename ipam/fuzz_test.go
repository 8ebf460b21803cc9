package ipam

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
)

// FuzzRequestPool: any RequestPool body either fails writing nothing, or
// succeeds with a pool whose gateway is the subnet's first host address
// and whose preferred (static) address is granted exactly when it may be
// (inside the subnet, not the gateway, network or broadcast address);
// without one, an address is granted exactly when the range has a free
// one, and it is inside the range and not special. Releasing the pool
// removes every key.
func FuzzRequestPool(f *testing.F) {
	for _, s := range []string{
		`{"Pool":"198.19.1.0/24"}`,
		`{"Pool":"198.19.1.0/24","SubPool":"198.19.1.128/25"}`,
		`{"Pool":"fd00::/64","V6":true}`,
		`{"Pool":"198.19.1.0/30","Options":{"com.docker.x":"1"}}`,
		`{"Pool":"198.19.1.0/24","SubPool":"198.19.1.255/32"}`,
		`{"Pool":"::/0","V6":true}`,
	} {
		for _, static := range []string{"", "198.19.1.130", "198.19.1.0", "198.19.1.255", "198.19.1.1", "fd00::", "fd00::5", "x"} {
			f.Add(s, static)
		}
	}
	f.Fuzz(func(t *testing.T, body, static string) {
		var r ipamapi.RequestPoolRequest
		if json.Unmarshal([]byte(body), &r) != nil {
			return
		}
		s, _ := openStore(t)
		m := New(Options{Store: s, HostID: "h1"})
		ctx := context.Background()
		resp, err := m.RequestPool(ctx, &r)
		if err != nil {
			requireEmpty(t, s) // a failed request leaves nothing
			return
		}
		subnet, err := ParsePoolID(resp.PoolID)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetupDone(ctx, subnet); err != nil {
			t.Fatal(err)
		}
		gw, err := m.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: resp.PoolID, Options: gwOpts})
		if err != nil || mustPrefix(t, gw.Address) != netip.PrefixFrom(subnet.Addr().Next(), subnet.Bits()) {
			t.Fatalf("gateway of %s: %v, %v", subnet, gw, err)
		}
		pool, err := m.pool(ctx, resp.PoolID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: resp.PoolID, Address: static})
		if static == "" {
			checkDynamic(t, pool, got, err)
		} else {
			checkStatic(t, pool, static, got, err)
		}
		if err := m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: resp.PoolID}); err != nil {
			t.Fatal(err)
		}
		requireEmpty(t, s)
	})
}

// checkDynamic: granted exactly when the range of the fresh pool holds an
// address that is not the gateway or special; that one is inside.
func checkDynamic(t *testing.T, p *Pool, got *ipamapi.RequestAddressResponse, err error) {
	t.Helper()
	r := p.effectiveRange()
	free := false
	for a, n := r.Addr(), 0; r.Contains(a) && n < 4; a, n = a.Next(), n+1 {
		free = free || (a != p.Gateway && !notForContainers(p.Subnet, a))
	}
	if err != nil {
		if free {
			t.Fatalf("range %s of %s has a free address, got %v", r, p.Subnet, err)
		}
		return
	}
	a := mustPrefix(t, got.Address)
	if !free || a.Bits() != p.Subnet.Bits() || !r.Contains(a.Addr()) || a.Addr() == p.Gateway || notForContainers(p.Subnet, a.Addr()) {
		t.Fatalf("got %s from range %s of %s (gateway %s)", a, r, p.Subnet, p.Gateway)
	}
}

// checkStatic: granted, exactly as asked, when static is an address of the
// subnet that is not its gateway, network or broadcast address.
func checkStatic(t *testing.T, p *Pool, static string, got *ipamapi.RequestAddressResponse, err error) {
	t.Helper()
	a, perr := netip.ParseAddr(static)
	may := perr == nil && p.Subnet.Contains(a) && a != p.Gateway && !notForContainers(p.Subnet, a)
	if may != (err == nil) {
		t.Fatalf("static %q in %s (gateway %s): granted %v, want %v (%v)", static, p.Subnet, p.Gateway, err == nil, may, err)
	}
	if err == nil && mustPrefix(t, got.Address) != netip.PrefixFrom(a, p.Subnet.Bits()) {
		t.Fatalf("static %s granted as %s", a, got.Address)
	}
}

// notForContainers is the fuzz test's own account of the network address
// (IPv4 and IPv6) and the IPv4 broadcast address, apart from Pool.special.
func notForContainers(subnet netip.Prefix, a netip.Addr) bool {
	if a == subnet.Addr() || !a.Is4() {
		return a == subnet.Addr()
	}
	net, got := subnet.Addr().As4(), a.As4()
	host := uint32(1)<<(32-subnet.Bits()) - 1
	return binary.BigEndian.Uint32(got[:]) == binary.BigEndian.Uint32(net[:])|host
}

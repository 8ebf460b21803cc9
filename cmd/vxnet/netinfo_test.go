package main

import (
	"net/netip"
	"testing"
)

// TestOverlayMTU: VXLAN over IPv6 costs 20 bytes more than over IPv4.
func TestOverlayMTU(t *testing.T) {
	for _, c := range []struct {
		addr string
		want int
	}{{"198.18.0.11", 1450}, {"2001:db8::11", 1430}, {"::ffff:198.18.0.11", 1450}} {
		u := underlay{Addr: netip.MustParseAddr(c.addr), MTU: 1500}
		if got := u.overlayMTU(); got != c.want {
			t.Errorf("underlay %s MTU 1500: overlay MTU %d, want %d", c.addr, got, c.want)
		}
	}
}

package simplane

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vxnet/vxnet/driver/dataplane"
)

func TestRecordsWhatTheDriverAsks(t *testing.T) {
	var told [][]dataplane.Peer
	p := New(func(vni uint32, peers []dataplane.Peer, _ time.Time) {
		if vni != 7 {
			t.Errorf("observer told of vni %d, want 7", vni)
		}
		told = append(told, peers)
	})
	gw := netip.MustParsePrefix("198.19.4.1/22")
	if err := p.EnsureNetwork(dataplane.NetworkConfig{VNI: 7, Addresses: []netip.Prefix{gw}}); err != nil {
		t.Fatal(err)
	}
	if vni, ok := p.VNIOf(netip.MustParsePrefix("198.19.4.0/22")); !ok || vni != 7 {
		t.Fatalf("VNIOf = %d, %v; want 7, true", vni, ok)
	}
	if _, ok := p.VNIOf(netip.MustParsePrefix("198.19.8.0/22")); ok {
		t.Fatal("VNIOf found a network for a subnet no gateway is in")
	}
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if _, err := p.EnsureEndpoint(dataplane.EndpointConfig{VNI: 7, ID: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.EnsureEndpoint(dataplane.EndpointConfig{VNI: 8, ID: id}); err == nil {
		t.Fatal("endpoint on a network the plane does not hold was accepted")
	}
	if used, _ := p.InUse(7); !slices.Equal(used, []string{id}) {
		t.Fatalf("InUse = %v, want the endpoint", used)
	}
	peer := dataplane.Peer{IP: netip.MustParseAddr("198.19.4.9"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, VTEP: net.ParseIP("198.18.0.12")}
	if err := p.SetPeers(7, []dataplane.Peer{peer}); err != nil {
		t.Fatal(err)
	}
	if got := p.Peers(7); len(got) != 1 || got[0].IP != peer.IP || len(told) != 1 {
		t.Fatalf("Peers = %v, observer told %d times; want the one peer, once", got, len(told))
	}
	if err := p.SetPeers(8, nil); err == nil {
		t.Fatal("SetPeers on a network the plane does not hold was accepted")
	}
	if err := p.DeleteNetwork(7); err != nil {
		t.Fatal(err)
	}
	if vnis, _ := p.Networks(); len(vnis) != 0 {
		t.Fatalf("Networks after delete = %v", vnis)
	}
}

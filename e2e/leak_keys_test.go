package e2e

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/store/keys"
)

// TestLeakCheckerStoreKeys needs no cluster: the store half of the leak
// checker reports a leftover key of every kind vxnet writes, with its
// kind, and every key an endpoint needs when it is missing.
func TestLeakCheckerStoreKeys(t *testing.T) {
	nothing := &dockerView{nets: map[*plugin][]dockerNet{}}
	for kind, key := range keys.Examples() {
		_, err := storeDiff(nothing, map[string][]byte{key: []byte("{}")}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "no Docker network or endpoint needs: "+kind+" "+key) {
			t.Errorf("a leaked %s key %q: checker says %v", kind, key, err)
		}
	}

	p := &plugin{h: &harness.Host{Name: "h1", IP: "198.18.0.11"}}
	addr := netip.MustParsePrefix("198.19.1.2/24")
	net := keys.PoolID(addr.Masked())
	ep := endpointView{host: p, net: net, id: "0123456789ab", mac: "02:42:c6:13:01:02", addrs: []netip.Prefix{addr}, name: "c1"}
	_, err := storeDiff(&dockerView{nets: map[*plugin][]dockerNet{}, eps: []endpointView{ep}}, map[string][]byte{}, map[*plugin]bool{p: true}, nil)
	for _, key := range []string{
		keys.Endpoint(net, ep.id), keys.HostEndpoint(p.hostID(), ep.id), keys.MAC(net, ep.mac), keys.Lease(net, addr.Addr()),
	} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("a lost key %q: checker says %v", key, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), keys.Heartbeat(p.hostID())) {
		t.Errorf("a missing heartbeat is reported (Consul drops it with its session): %v", err)
	}
}

package keys

import (
	"net/netip"
	"testing"
)

// Every example is of its own kind, and the kinds tell apart keys that
// differ in one segment.
func TestKind(t *testing.T) {
	ex := Examples()
	if len(ex) != len(kinds) {
		t.Fatalf("%d examples for %d kinds", len(ex), len(kinds))
	}
	for want, key := range ex {
		if got := Kind(key); got != want {
			t.Errorf("Kind(%q) = %q, want %q", key, got, want)
		}
	}
	for _, key := range []string{"", "networks", "networks/", "networks/a/b", "hosts/h/other/x", "ipam/addrs/p", "ipam/pools", "subnets/x", "vxnet/networks/a", "endpoints//e"} {
		if got := Kind(key); got != "" {
			t.Errorf("Kind(%q) = %q, want none", key, got)
		}
	}
}

func TestBuildersAndParsers(t *testing.T) {
	p := netip.MustParsePrefix("fd00:1::/64")
	id := PoolID(p)
	if id != "fd00:1::_64" {
		t.Fatalf("PoolID(%s) = %q", p, id)
	}
	if got, ok := ParsePoolID(id); !ok || got != p {
		t.Fatalf("ParsePoolID(%q) = %s, %v", id, got, ok)
	}
	for _, bad := range []string{"", "nope", "198.19.1.1_24", "198.19.1.0/24", "198.19.1.0_24_1"} {
		if _, ok := ParsePoolID(bad); ok {
			t.Errorf("ParsePoolID(%q) accepted", bad)
		}
	}
	if v, ok := ParseVNI(VNI(4096)); !ok || v != 4096 {
		t.Fatalf("ParseVNI(VNI(4096)) = %d, %v", v, ok)
	}
	for _, bad := range []string{"vnis/x", "networks/1", "vnis/4294967296"} {
		if _, ok := ParseVNI(bad); ok {
			t.Errorf("ParseVNI(%q) accepted", bad)
		}
	}
	a := netip.MustParseAddr("fd00:1::2")
	for key, want := range map[string]string{
		Lease(id, a):                  "fd00:1::2",
		HostNetwork("h1", "abc"):      "abc",
		Heartbeat("198.18.0.11"):      "198.18.0.11",
		MAC("n", "02:42:c6:13:01:02"): "02:42:c6:13:01:02",
		Pool(id):                      id,
	} {
		if got := Last(key); got != want {
			t.Errorf("Last(%q) = %q, want %q", key, got, want)
		}
	}
}

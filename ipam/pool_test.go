package ipam

import (
	"net/netip"
	"testing"

	"github.com/vxnet/vxnet/store/keys"
)

func TestPoolIDRoundTrip(t *testing.T) {
	for _, s := range []string{"198.19.1.0/24", "198.19.0.0/16", "fd00:1::/64"} {
		p := netip.MustParsePrefix(s)
		got, err := ParsePoolID(keys.PoolID(p))
		if err != nil || got != p {
			t.Errorf("ParsePoolID(keys.PoolID(%s)) = %v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "x", "198.19.1.1_24", "198.19.1.0/24", "198.19.1.0_24_1"} {
		if _, err := ParsePoolID(bad); err == nil {
			t.Errorf("ParsePoolID(%q) accepted", bad)
		}
	}
}

func TestNextFree(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name  string
		pool  Pool
		start string
		taken []string
		want  string // "" = none free
	}{
		{"first host skips network and gateway", Pool{Subnet: netip.MustParsePrefix("198.19.1.0/24"), Gateway: a("198.19.1.1")}, "", nil, "198.19.1.2"},
		{"skips taken", Pool{Subnet: netip.MustParsePrefix("198.19.1.0/24"), Gateway: a("198.19.1.1")}, "", []string{"198.19.1.2", "198.19.1.3"}, "198.19.1.4"},
		{"starts at cursor", Pool{Subnet: netip.MustParsePrefix("198.19.1.0/24")}, "198.19.1.100", nil, "198.19.1.100"},
		{"wraps and skips broadcast", Pool{Subnet: netip.MustParsePrefix("198.19.1.0/30")}, "198.19.1.2", []string{"198.19.1.2"}, "198.19.1.1"},
		{"full", Pool{Subnet: netip.MustParsePrefix("198.19.1.0/30"), Gateway: a("198.19.1.1")}, "", []string{"198.19.1.2"}, ""},
		{"range", Pool{Subnet: netip.MustParsePrefix("198.19.1.0/24"), Range: netip.MustParsePrefix("198.19.1.128/25")}, "", nil, "198.19.1.128"},
		{"range end excludes broadcast", Pool{Subnet: netip.MustParsePrefix("198.19.1.0/24"), Range: netip.MustParsePrefix("198.19.1.254/31")}, "", []string{"198.19.1.254"}, ""},
		{"ipv6 skips anycast", Pool{Subnet: netip.MustParsePrefix("fd00:1::/64"), Gateway: a("fd00:1::1")}, "", nil, "fd00:1::2"},
		{"ipv6 huge with taken", Pool{Subnet: netip.MustParsePrefix("fd00:1::/64")}, "", []string{"fd00:1::1", "fd00:1::2"}, "fd00:1::3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			taken := map[netip.Addr]bool{}
			for _, s := range tt.taken {
				taken[a(s)] = true
			}
			var start netip.Addr
			if tt.start != "" {
				start = a(tt.start)
			}
			got, ok := tt.pool.nextFree(start, taken)
			if tt.want == "" {
				if ok {
					t.Fatalf("got %s, want none", got)
				}
				return
			}
			if !ok || got != a(tt.want) {
				t.Fatalf("got %s %v, want %s", got, ok, tt.want)
			}
		})
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{
		"198.19.1.0/24": "198.19.1.255", "198.19.0.0/16": "198.19.255.255",
		"198.19.1.0/32": "198.19.1.0", "fd00::/64": "fd00::ffff:ffff:ffff:ffff",
	} {
		if got := lastAddr(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

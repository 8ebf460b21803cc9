package ipam

import (
	"context"
	"encoding/json"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
)

// FuzzRequestPool: any RequestPool body either fails writing nothing, or
// succeeds with a pool that hands out an address inside it, and releasing
// the pool removes every key.
func FuzzRequestPool(f *testing.F) {
	for _, s := range []string{
		`{"Pool":"198.19.1.0/24"}`,
		`{"Pool":"198.19.1.0/24","SubPool":"198.19.1.128/25"}`,
		`{"Pool":"fd00::/64","V6":true}`,
		`{"Pool":"198.19.1.0/30","Options":{"com.docker.x":"1"}}`,
		`{"Pool":"::/0","V6":true}`,
	} {
		f.Add(s, "")
		f.Add(s, "198.19.1.130")
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
			if kvs, _, _ := s.List(ctx, ""); len(kvs) != 0 {
				t.Fatalf("failed RequestPool (%v) left %d keys", err, len(kvs))
			}
			return
		}
		p, err := ParsePoolID(resp.PoolID)
		if err != nil {
			t.Fatal(err)
		}
		for _, opts := range []map[string]string{{requestAddressType: gatewayType}, nil} {
			a, err := m.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: resp.PoolID, Address: static, Options: opts})
			if err != nil {
				continue
			}
			var got struct{ Address string }
			got.Address = a.Address
			if !p.Contains(mustPrefix(t, got.Address).Addr()) {
				t.Fatalf("address %s outside pool %s", got.Address, p)
			}
		}
		if err := m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: resp.PoolID}); err != nil {
			t.Fatal(err)
		}
		if kvs, _, _ := s.List(ctx, ""); len(kvs) != 0 {
			t.Fatalf("ReleasePool left %d keys", len(kvs))
		}
	})
}

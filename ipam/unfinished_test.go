package ipam

import (
	"context"
	"errors"
	"fmt"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// A pool a killed RequestPool left in setup is released at the next start
// unless a network of the host uses it; one whose network exists, and
// other hosts' memberships, stay. A host that leaves a pool leaves its
// setup too.
func TestReleaseUnfinished(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	h1 := New(Options{Store: s, HostID: "h1"})
	h2 := New(Options{Store: s, HostID: "h2"})
	for _, m := range []*IPAM{h1, h2} {
		if _, err := m.RequestPool(ctx, &ipamapi.RequestPoolRequest{Pool: "198.19.1.0/24"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h1.RequestPool(ctx, &ipamapi.RequestPoolRequest{Pool: "198.19.2.0/24"}); err != nil {
		t.Fatal(err)
	}
	// h2 created its network on 198.19.1.0/24; h1 died in both creates.
	if err := h2.SetupDone(ctx, mustPrefix(t, "198.19.1.0/24")); err != nil {
		t.Fatal(err)
	}
	used := func(id string) bool { return false }
	got, err := h1.ReleaseUnfinished(ctx, used)
	if err != nil || len(got) != 2 {
		t.Fatalf("released %v, %v; want both of h1's pools", got, err)
	}
	p, _, err := store.GetJSON[Pool](ctx, s, keys.Pool("198.19.1.0_24"))
	if err != nil || p.Hosts["h1"] || !p.Hosts["h2"] || len(p.Setup) != 0 {
		t.Fatalf("shared pool after h1's release: %+v, %v", p, err)
	}
	if _, err := s.Get(ctx, keys.Pool("198.19.2.0_24")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("h1's own unfinished pool still there: %v", err)
	}
	// The subnet works again on h1; a pool whose network exists stays.
	if _, err := h1.RequestPool(ctx, &ipamapi.RequestPoolRequest{Pool: "198.19.1.0/24"}); err != nil {
		t.Fatal(err)
	}
	if got, err := h1.ReleaseUnfinished(ctx, func(id string) bool { return id == "198.19.1.0_24" }); err != nil || len(got) != 0 {
		t.Fatalf("released %v, %v; want none (the pool is in use)", got, err)
	}
	if got, err := h2.ReleaseUnfinished(ctx, used); err != nil || len(got) != 0 {
		t.Fatalf("h2 released %v, %v; its setup is done", got, err)
	}
}

// PoolState follows a pool through request, setup done and release.
func TestPoolState(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	m := New(Options{Store: s, HostID: "h1"})
	sub := mustPrefix(t, "198.19.1.0/24")
	check := func(when string, member, setup bool) {
		t.Helper()
		gm, gs, err := m.PoolState(ctx, sub)
		if err != nil || gm != member || gs != setup {
			t.Fatalf("%s: member %v setup %v (%v), want %v %v", when, gm, gs, err, member, setup)
		}
	}
	check("before any request", false, false)
	if _, err := m.RequestPool(ctx, &ipamapi.RequestPoolRequest{Pool: sub.String()}); err != nil {
		t.Fatal(err)
	}
	check("requested", true, true)
	if err := m.SetupDone(ctx, sub); err != nil {
		t.Fatal(err)
	}
	check("network created", true, false)
	if err := m.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: keys.PoolID(sub)}); err != nil {
		t.Fatal(err)
	}
	check("released", false, false)
}

// A subnet claim no pool membership backs (a plugin died between the two
// writes) is dropped at start, in both scopes; other hosts' claims and a
// backed claim stay.
func TestStaleClaimsDroppedAtStart(t *testing.T) {
	for _, sc := range []scope.Scope{scope.Local, scope.Global} {
		t.Run(string(sc), func(t *testing.T) {
			s, _ := openStore(t)
			ctx := context.Background()
			h1 := New(Options{Store: s, HostID: "h1", Scope: sc})
			id := requestPool(t, h1, ipamapi.RequestPoolRequest{Pool: "198.19.1.0/24"})
			if err := h1.SetupDone(ctx, mustPrefix(t, "198.19.1.0/24")); err != nil {
				t.Fatal(err)
			}
			stale := &subnetIndex{Pools: map[string]map[string]bool{
				id:              {"h1": true},
				"198.19.2.0_24": {"h1": true, "h2": true},
				"198.19.3.0_24": {"h1": true},
			}}
			if err := store.PutJSON(ctx, s, keys.PoolIndex, stale); err != nil {
				t.Fatal(err)
			}
			if _, err := h1.ReleaseUnfinished(ctx, func(string) bool { return true }); err != nil {
				t.Fatal(err)
			}
			idx, _, err := store.GetJSON[subnetIndex](ctx, s, keys.PoolIndex)
			want := map[string]map[string]bool{id: {"h1": true}, "198.19.2.0_24": {"h2": true}}
			if err != nil || fmt.Sprint(idx.Pools) != fmt.Sprint(want) {
				t.Fatalf("index after start: %+v, %v; want %v", idx, err, want)
			}
		})
	}
}

// A pool past its setup that no network of the host uses (its ReleasePool
// was lost with a killed plugin) is released by ReleaseLost, with its
// subnet claim: the last user's removes the pool. A pool in setup, one in
// use and other hosts' memberships stay; global scope releases nothing.
func TestReleaseLost(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	h1 := New(Options{Store: s, HostID: "h1"})
	for _, sub := range []string{"198.19.1.0/24", "198.19.2.0/24", "198.19.3.0/24"} {
		if _, err := h1.RequestPool(ctx, &ipamapi.RequestPoolRequest{Pool: sub}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"198.19.1.0/24", "198.19.2.0/24"} { // 198.19.3.0/24 stays in setup
		if err := h1.SetupDone(ctx, mustPrefix(t, sub)); err != nil {
			t.Fatal(err)
		}
	}
	inUse := func(context.Context) (map[string]bool, error) { return map[string]bool{"198.19.2.0_24": true}, nil }
	if got, err := New(Options{Store: s, HostID: "h1", Scope: "global"}).ReleaseLost(ctx, inUse); err != nil || len(got) != 0 {
		t.Fatalf("global scope released %v, %v", got, err)
	}
	got, err := h1.ReleaseLost(ctx, inUse)
	if err != nil || fmt.Sprint(got) != "[198.19.1.0_24]" {
		t.Fatalf("released %v, %v; want only the lost 198.19.1.0_24", got, err)
	}
	if _, err := s.Get(ctx, keys.Pool("198.19.1.0_24")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lost pool still there: %v", err)
	}
	idx, _, err := store.GetJSON[subnetIndex](ctx, s, keys.PoolIndex)
	if err != nil || idx.Pools["198.19.1.0_24"] != nil || !idx.Pools["198.19.2.0_24"]["h1"] || !idx.Pools["198.19.3.0_24"]["h1"] {
		t.Fatalf("subnet claims after the release: %+v, %v", idx, err)
	}
	failing := func(context.Context) (map[string]bool, error) { return nil, errors.New("store down") }
	if got, err := h1.ReleaseLost(ctx, failing); err == nil || len(got) != 0 {
		t.Fatalf("with the host's networks unknown: released %v, %v; want an error and nothing released", got, err)
	}
}

package main

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/driver/simplane"
	"github.com/vxnet/vxnet/ipam"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/keys"
)

// countedHost is one host's agent (driver and IPAM wired as startAgent
// wires them) on a bolt store behind the simulation's counting store.
func countedHost(t *testing.T) (*simHost, *storeCounts, store.Store) {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h, n := countedHostOn(t, b)
	return h, n, b
}

// countedHostOn is countedHost on the store b.
func countedHostOn(t *testing.T, b store.Store) (*simHost, *storeCounts) {
	t.Helper()
	n := &storeCounts{}
	st := newSimStore(b, n)
	plane := simplane.New(func(uint32, []dataplane.Peer, time.Time) {})
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetLevel(logrus.ErrorLevel)
	ip := ipam.New(ipam.Options{Store: st, HostID: "h1", Scope: scope.Local, Log: log})
	drv, err := driver.New(driver.Options{
		Store: st, Plane: plane, HostID: "h1", VTEP: netip.MustParseAddr("198.18.0.11"),
		Port: 4789, MTU: 1450, Scope: scope.Local, MultiHost: true, Log: log, Pools: ip,
		SweepEvery: sweepEvery,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drv.Close)
	return &simHost{id: "h1", st: st, plane: plane, ag: &agent{drv: drv, ip: ip}, nets: map[int]simNet{}}, n
}

// sweepCalls are the calls of the searches for leftovers, which read the
// keys of every host's networks, VNIs and pools.
func sweepCalls(calls map[string]int64) int64 {
	return calls["list keys networks/"] + calls["list vnis/"] + calls["list keys ipam/"]
}

// A steady reconcile round reads no key of the whole cluster: the
// searches for this host's leftovers (dropStale's networks and VNIs, the
// IPAM's ReleaseLost) run at start, after each network create or
// remove of the host, and every sweepEvery. Before, every round of every
// host listed every network, VNI and pool of the cluster: a quarter of
// the create phase's requests at 100 simulated hosts (docs/scaling.md).
// A leftover is still found in the round after a failed create, and a
// removal sweeps too.
func TestSteadyRoundsDoNotSweepTheCluster(t *testing.T) {
	h, n, raw := countedHost(t)
	ctx := context.Background()
	for i, s := range []string{"198.19.4.0/22", "198.19.8.0/22"} {
		if err := h.createNetwork(ctx, i, netip.MustParsePrefix(s)); err != nil {
			t.Fatal(err)
		}
	}
	round := func() map[string]int64 {
		t.Helper()
		before, _ := n.calls.copies()
		if err := reconcile(ctx, h.ag.drv, h.ag.ip, nil); err != nil {
			t.Fatal(err)
		}
		now, _ := n.calls.copies()
		return diff(now, before)
	}
	if first := round(); sweepCalls(first) == 0 {
		t.Fatalf("the first round after start searched no leftovers: %v", first)
	}
	for i := range 3 {
		if got := round(); sweepCalls(got) != 0 {
			t.Errorf("steady round %d: %d listings of the cluster's networks, VNIs and pools (%v); want 0", i+1, sweepCalls(got), got)
		}
	}
	// A VNI this host reserved for no network, as a create killed
	// between the two writes leaves it; a failed create makes the next
	// round look for it.
	left := keys.VNI(4000)
	if err := store.CreateJSON(ctx, raw, left, driver.VNIRecord{Network: "198.19.200.0_22", Host: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.ag.drv.CreateNetwork(ctx, &network.CreateNetworkRequest{NetworkID: "not-an-id"}); err == nil {
		t.Fatal("CreateNetwork of a bad network ID succeeded")
	}
	if got := round(); sweepCalls(got) == 0 {
		t.Errorf("the round after a failed create searched no leftovers: %v", got)
	}
	if _, err := raw.Get(ctx, left); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the VNI reserved for no network is still there after the round that followed a failed create (err %v)", err)
	}
	if got := round(); sweepCalls(got) != 0 {
		t.Errorf("the round after the sweep: %d listings of the cluster (%v); want 0", sweepCalls(got), got)
	}
	// A network removal that succeeds sweeps too: it may end what a kill
	// began (a ReleasePool lost with the plugin, forgotten by dockerd).
	if err := h.ag.drv.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: h.nets[0].dockerID}); err != nil {
		t.Fatal(err)
	}
	if got := round(); sweepCalls(got) == 0 {
		t.Errorf("the round after a network removal searched no leftovers: %v", got)
	}
}

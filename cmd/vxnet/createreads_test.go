package main

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vxnet/vxnet/ipam"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// A network create (RequestPool, the gateway's RequestAddress,
// CreateNetwork's SetupDone) reads its pool record at most twice: once in
// RequestPool, and again only where another host wrote it meanwhile;
// each update CASes from the record as the create last read or wrote it
// (change 22). Five reads before, on a record growing with the hosts.
func TestNetworkCreateReadsPoolOnce(t *testing.T) {
	h, n, raw := countedHost(t)
	ctx := context.Background()
	for i, s := range []string{"198.19.4.0/22", "198.19.8.0/22"} {
		before, _ := n.calls.copies()
		if err := h.createNetwork(ctx, i, netip.MustParsePrefix(s)); err != nil {
			t.Fatal(err)
		}
		now, _ := n.calls.copies()
		got := diff(now, before)
		t.Logf("create of %s: %v", s, got)
		if reads := got["get pool"] + got["get many pool"]; reads == 0 || reads > 2 {
			t.Errorf("create of %s read its pool record %d times; want 1 or 2", s, reads)
		}
		var p ipam.Pool
		kv, err := raw.Get(ctx, keys.Pool(keys.PoolID(netip.MustParsePrefix(s))))
		if err == nil {
			err = store.Decode(kv, &p)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !p.Hosts["h1"] || p.Setup["h1"] || !p.Gateway.IsValid() {
			t.Errorf("pool %s after the create: hosts %v, setup %v, gateway %v; want h1 a user, out of setup, a gateway", s, p.Hosts, p.Setup, p.Gateway)
		}
	}
}

// A peer watcher's start reads the network's change log and lists its
// endpoint records in one request (store.ManyReader, change 23): two,
// the log's listing and the records', before. The records it read are
// the ones there: a host's endpoint added before the watcher started is
// in its peers' plan only through that read.
func TestWatcherStartIsOneRead(t *testing.T) {
	h, n, _ := countedHost(t)
	ctx := context.Background()
	for i, s := range []string{"198.19.4.0/22", "198.19.8.0/22"} {
		before := quietCalls(t, n)
		if err := h.createNetwork(ctx, i, netip.MustParsePrefix(s)); err != nil {
			t.Fatal(err)
		}
		got := diff(quietCalls(t, n), before)
		t.Logf("create of %s and its watcher's start: %v", s, got)
		if l := got["list endpoint changes"] + got["list endpoints/"]; l != 0 || got["read many endpoints/"] != 1 {
			t.Errorf("watcher start of %s: %d listings (%v); want one read many of the log and the records", s, l, got)
		}
	}
}

package main

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/consul"
	"github.com/vxnet/vxnet/store/consul/consultest"
	"github.com/vxnet/vxnet/store/keys"
)

// quietCalls waits until h's store calls stop moving (its peer watchers
// followed the change logs) and returns them.
func quietCalls(t *testing.T, n *storeCounts) map[string]int64 {
	t.Helper()
	last, _ := n.calls.copies()
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		now, _ := n.calls.copies()
		if len(diff(now, last)) == 0 {
			return now
		}
		last = now
	}
	t.Fatal("the host's store calls did not settle in 5 s")
	return nil
}

// total sums calls.
func total(calls map[string]int64) int64 {
	var n int64
	for _, v := range calls {
		n += v
	}
	return n
}

// A steady reconcile round is one store request: its reads of this host's
// own records (its networks listed; their records, their pools, its
// endpoints' records and copies checked), five requests every 5 s on
// every host before, are read together, what the last round read at the
// indexes it left (store.Round). A round after another host changed a
// network record reads that record again, and the next is one request
// again; what a round decides is unchanged: an endpoint record of this
// host purged by others is republished.
func TestSteadyRoundIsOneRequest(t *testing.T) {
	h, n, raw := countedHost(t)
	ctx := context.Background()
	for i, s := range []string{"198.19.4.0/22", "198.19.8.0/22"} {
		if err := h.createNetwork(ctx, i, netip.MustParsePrefix(s)); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, _, err := h.addEndpoint(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	round := func() map[string]int64 {
		t.Helper()
		before := quietCalls(t, n)
		if err := reconcile(ctx, h.ag.drv, h.ag.ip, nil); err != nil {
			t.Fatal(err)
		}
		return diff(quietCalls(t, n), before)
	}
	round() // at start: sweeps the cluster
	round()
	for i := range 3 {
		if got := round(); total(got) != 1 {
			t.Errorf("steady round %d: %d store requests (%v); want 1", i+1, total(got), got)
		}
	}

	// Another host joins a network: its record moves.
	net0 := keys.Network(keys.PoolID(netip.MustParsePrefix("198.19.4.0/22")))
	kv, err := raw.Get(ctx, net0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(ctx, net0, kv.Value); err != nil {
		t.Fatal(err)
	}
	got := round()
	t.Logf("the round after a network record moved: %v", got)
	if total(got) > 2 || got["get network"]+got["get many network"]+got["read many network"] != 1 {
		t.Errorf("the round after a network record moved: %v; want it read again, in at most 2 requests", got)
	}
	if got := round(); total(got) != 1 {
		t.Errorf("the steady round after: %d store requests (%v); want 1", total(got), got)
	}

	// Other hosts purge an endpoint record of this host: republished.
	eps, _, err := raw.List(ctx, keys.AllEndpoints)
	if err != nil || len(eps) == 0 {
		t.Fatalf("endpoint records: %d, %v", len(eps), err)
	}
	if err := raw.Delete(ctx, eps[0].Key); err != nil {
		t.Fatal(err)
	}
	round()
	if _, err := raw.Get(ctx, eps[0].Key); errors.Is(err, store.ErrNotFound) {
		t.Errorf("endpoint record %q purged by others was not republished by the round", eps[0].Key)
	}
}

// rollbackRounds is a bolt store whose ReadRound answers as Consul's
// does when a check fails: the transaction is rolled back, and only the
// failed checks come back, without the listings.
type rollbackRounds struct{ *bolt.Store }

func (s rollbackRounds) ReadRound(ctx context.Context, prefixes []string, known map[string]uint64) (map[string][]store.KV, []string, error) {
	lists, changed, err := s.Store.ReadRound(ctx, prefixes, known)
	if err == nil && len(changed) > 0 {
		lists = nil
	}
	return lists, changed, err
}

// A round whose index checks find records moved (every round of every
// member while networks are created) is two requests on Consul: the
// round's read, whose failed check rolls its listings back, then one
// read of those listings and of the moved records together (change 24).
// Before, the listings were listed again one request each, and the
// moved records read in one more.
func TestMovedRoundIsTwoRequests(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	testMovedRound(t, rollbackRounds{b})
}

// The same on Consul itself.
func TestMovedRoundIsTwoConsulRequests(t *testing.T) {
	c, err := consul.Open(context.Background(), "consul://"+consultest.Addr(t)+"/vxnet-round-test-"+store.Nonce())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	testMovedRound(t, c)
}

// testMovedRound counts the requests of the rounds after network records
// on b moved.
func testMovedRound(t *testing.T, b store.Store) {
	h, n := countedHostOn(t, b)
	ctx := context.Background()
	var recs []string
	for i, s := range []string{"198.19.4.0/22", "198.19.8.0/22"} {
		if err := h.createNetwork(ctx, i, netip.MustParsePrefix(s)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.addEndpoint(ctx, i); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, keys.Network(keys.PoolID(netip.MustParsePrefix(s))))
	}
	round := func() map[string]int64 {
		t.Helper()
		before := quietCalls(t, n)
		if err := reconcile(ctx, h.ag.drv, h.ag.ip, nil); err != nil {
			t.Fatal(err)
		}
		return diff(quietCalls(t, n), before)
	}
	round()
	round()
	if got := round(); total(got) != 1 {
		t.Fatalf("steady round: %v; want 1 request", got)
	}
	for i := range 2 {
		for _, k := range recs[:i+1] { // other hosts join: the records move
			kv, err := b.Get(ctx, k)
			if err == nil {
				_, err = b.Put(ctx, k, append(kv.Value, ' ')) // a new value: Consul keeps the index of an equal one
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		got := round()
		t.Logf("a round after %d network records moved: %v", i+1, got)
		if total(got) != 2 || got["read many hosts/"] != 1 {
			t.Errorf("a round after %d network records moved: %v; want 2 requests, the second one read many", i+1, got)
		}
		if got := round(); total(got) != 1 {
			t.Errorf("the steady round after: %v; want 1 request", got)
		}
	}
}

package driver

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

func TestChangeLogSince(t *testing.T) {
	var l ChangeLog
	for i := range changeLogSize + 5 {
		l = l.with(fmt.Sprintf("ep%d", i))
	}
	if l.Seq != changeLogSize+5 || len(l.Recent) != changeLogSize || l.Recent[0].Seq != 6 {
		t.Fatalf("log after %d changes: seq %d, %d entries from %d", changeLogSize+5, l.Seq, len(l.Recent), l.Recent[0].Seq)
	}
	for _, tt := range []struct {
		seq  uint64
		ids  []string
		full bool
	}{
		{l.Seq, nil, false},
		{l.Seq - 2, []string{"ep35", "ep36"}, false},
		{5, nil, false},        // the entry after 5 is the oldest kept
		{4, nil, true},         // behind the log
		{l.Seq + 1, nil, true}, // the log was removed and written anew
		{0, nil, true},         // never read, and the log has moved on
	} {
		ids, ok := l.since(tt.seq)
		if ok == tt.full || (tt.ids != nil && !slices.Equal(ids, tt.ids)) {
			t.Errorf("since(%d) = %v, %v; want %v, full listing %v", tt.seq, ids, ok, tt.ids, tt.full)
		}
	}
	if ids, ok := (ChangeLog{}).with("a", "b", "a").since(0); !ok || !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("since(0) of a new log = %v, %v; want [a b] once each", ids, ok)
	}
}

// A member reads only the records the log names; one whose log does not
// reach back to its position lists the whole prefix and so sees records written without a log entry (by a
// host of an earlier version).
func TestFollowChangeLog(t *testing.T) {
	s, _ := countedStore(t, "", false)
	e1, e2, start := twoMembers(t, s, s)
	ctx := context.Background()
	const key = followKey
	if len(start.kvs) != 1 || start.seq != 1 {
		t.Fatalf("full listing: %d records at seq %d, err %v; want 1 at 1", len(start.kvs), start.seq, start.err)
	}
	// An old-version host's record: no log entry.
	if err := store.PutJSON(ctx, e1.store, keys.Endpoint(key, ep2), Endpoint{ID: ep2, Network: key, Host: "h9", VTEP: netip.MustParseAddr("198.18.0.19"), Addrs: []netip.Prefix{netip.MustParsePrefix("198.19.1.9/24")}, MAC: "02:42:c6:13:01:09"}); err != nil {
		t.Fatal(err)
	}
	if err := e1.createEndpoint(net1, ep3, "198.19.1.3/24", ""); err != nil {
		t.Fatal(err)
	}
	next := e2.d.nextListing(ctx, key, start)
	if next.err != nil || next.seq != 2 || len(next.kvs) != 2 || next.kvs[1].Key != keys.Endpoint(key, ep3) {
		t.Fatalf("after one logged change: seq %d, records %v, err %v; want ep1 and ep3 only (read by the log)", next.seq, keysOf(next.kvs), next.err)
	}
	behind := start
	behind.seq = 100 // a log removed and written anew (TestChangeLogSince has the other cases)
	full := e2.d.nextListing(ctx, key, behind)
	if full.err != nil || len(full.kvs) != 3 {
		t.Fatalf("log written anew: records %v, err %v; want all 3 (full listing)", keysOf(full.kvs), full.err)
	}
	e1.deleteEndpoint(net1, ep3)
	if gone := e2.d.nextListing(ctx, key, next); gone.err != nil || len(gone.kvs) != 1 {
		t.Fatalf("after a logged removal: records %v, err %v; want ep1 only", keysOf(gone.kvs), gone.err)
	}
	if err := e1.store.Delete(ctx, keys.Endpoint(key, ep2)); err != nil {
		t.Fatal(err)
	}
	e1.deleteEndpoint(net1, ep1)
	e1.deleteNetwork(net1)
	e2.deleteNetwork(net1)
	e1.wantNoKeys()
}

// twoMembers starts hosts h1 on s1 and h2 on s2 (views of one store),
// both members of net1 (key followKey), and h1's endpoint ep1 at
// 198.19.1.2; it returns them and h2's full listing once h2 programmed it.
func twoMembers(t *testing.T, s1, s2 store.Store) (e1, e2 *env, start listing) {
	t.Helper()
	e1, e2 = newHost(t, s1, "h1", "198.18.0.11"), newHost(t, s2, "h2", "198.18.0.12")
	ctx := context.Background()
	for _, e := range []*env{e1, e2} {
		if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e1.createEndpoint(net1, ep1, "198.19.1.2/24", ""); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, e2, DefaultVNIOffset, "198.19.1.2@198.18.0.11")
	if start = e2.d.fullListing(ctx, followKey); start.err != nil {
		t.Fatal(start.err)
	}
	return e1, e2, start
}

// followKey is net1's cluster key in twoMembers.
const followKey = "198.19.1.0_24"

func keysOf(kvs []store.KV) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Key)
	}
	return out
}

// The periodic full listing backs off while it finds nothing the log did
// not name (also when the log named changes in between), and comes back
// to every fullListEvery when it does.
func TestPeriodicListingBacksOff(t *testing.T) {
	e1 := newEnv(t)
	ctx := context.Background()
	if err := e1.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	const key = "198.19.1.0_24"
	if err := e1.createEndpoint(net1, ep1, "198.19.1.2/24", ""); err != nil {
		t.Fatal(err)
	}
	l := e1.d.fullListing(ctx, key)
	if l.err != nil || l.every != fullListEvery {
		t.Fatalf("full listing: every %v, err %v", l.every, l.err)
	}
	for want := 2 * fullListEvery; want <= fullListMax; want *= 2 {
		if want == 4*fullListEvery { // a logged add and removal in between: no reason to list sooner
			if err := e1.createEndpoint(net1, ep3, "198.19.1.3/24", ""); err != nil {
				t.Fatal(err)
			}
			e1.deleteEndpoint(net1, ep1)
		}
		if l = e1.d.periodicListing(ctx, key, l); l.err != nil || l.every != want {
			t.Fatalf("periodic listing without unlogged writes: every %v, err %v; want %v", l.every, l.err, want)
		}
	}
	if l = e1.d.periodicListing(ctx, key, l); l.every != fullListMax {
		t.Fatalf("period grew past %v: %v", fullListMax, l.every)
	}
	if _, err := e1.store.Put(ctx, keys.Endpoint(key, ep2), []byte(`{"id":"`+ep2+`"}`)); err != nil {
		t.Fatal(err)
	}
	if l = e1.d.periodicListing(ctx, key, l); l.every != fullListEvery || len(l.kvs) != 2 {
		t.Fatalf("after a write without the log: every %v, %d records; want %v and 2", l.every, len(l.kvs), fullListEvery)
	}
	if err := e1.store.Delete(ctx, keys.Endpoint(key, ep2)); err != nil {
		t.Fatal(err)
	}
	e1.deleteEndpoint(net1, ep3)
	e1.deleteNetwork(net1)
	e1.wantNoKeys()
}

// movingLogStore moves network net's change log (another member's write)
// before each of the first n transactions that advance it.
type movingLogStore struct {
	store.Store
	net   string
	n     int
	moved int
}

func (m *movingLogStore) Txn(ctx context.Context, ops []store.Op) error {
	for _, op := range ops {
		if op.Key == keys.Changes(m.net) && m.moved < m.n {
			m.moved++
			l, _, err := readChangeLog(ctx, m.Store, m.net)
			if err != nil {
				return err
			}
			if err := store.PutJSON(ctx, m.Store, keys.Changes(m.net), l.with(fmt.Sprintf("other%d", m.moved))); err != nil {
				return err
			}
		}
	}
	return m.Store.Txn(ctx, ops)
}

// A write that keeps losing the change log to other members tries again
// while its caller's deadline lasts, not only 16 times; without a
// deadline store.MaxAttempts still bound it.
func TestChangeLogWriteRetriesUntilDeadline(t *testing.T) {
	const net = "198.19.5.0_24"
	base := newEnv(t).store
	rec := []store.Op{{Verb: store.VerbPut, Key: keys.Endpoint(net, "ep1"), Value: []byte(`{}`)}}

	s := &movingLogStore{Store: base, net: net, n: store.MaxAttempts + 4}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := txnWithChanges(ctx, s, net, rec, "ep1"); err != nil {
		t.Fatalf("with a deadline, after %d lost attempts: %v", s.n, err)
	}
	if l, _, err := readChangeLog(ctx, base, net); err != nil || l.Seq != uint64(s.n)+1 {
		t.Fatalf("change log seq %d (err %v); want %d: the other writers' %d and ours", l.Seq, err, s.n+1, s.n)
	}

	s = &movingLogStore{Store: base, net: net, n: 1 << 30}
	err := txnWithChanges(context.Background(), s, net, rec, "ep1")
	if err == nil || s.moved != store.MaxAttempts {
		t.Fatalf("without a deadline: err %v after %d attempts; want an error after %d", err, s.moved, store.MaxAttempts)
	}
}

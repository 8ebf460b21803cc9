package driver

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// A member woken by the change log takes the added records from the log:
// no read of an endpoint record per add (one Get per member per add
// before), with the same bytes and store index a read gives. A removal
// still reads the record (not found: removed).
func TestFollowTakesAddedRecordsFromTheLog(t *testing.T) {
	s, r := countedStore(t, keys.AllEndpoints, false)
	e1, e2, start := twoMembers(t, s, r)
	ctx := context.Background()
	const key = followKey
	r.Take()
	for i, id := range []string{ep2, ep3} {
		if err := e1.createEndpoint(net1, id, fmt.Sprintf("198.19.1.%d/24", i+3), ""); err != nil {
			t.Fatal(err)
		}
	}
	// The watcher of h2 runs too: it reads through the same counter.
	waitPeers(t, e2, DefaultVNIOffset, "198.19.1.2@198.18.0.11,198.19.1.3@198.18.0.11,198.19.1.4@198.18.0.11")
	next := e2.d.nextListing(ctx, key, start)
	if n := r.Take(); n != 0 {
		t.Errorf("following 2 adds read %d endpoint records; want 0 (taken from the change log)", n)
	}
	want, _, err := s.List(ctx, keys.Endpoints(key))
	if err != nil {
		t.Fatal(err)
	}
	if next.err != nil || len(next.kvs) != len(want) {
		t.Fatalf("after 2 adds: records %v, err %v; want %v", keysOf(next.kvs), next.err, keysOf(want))
	}
	for i, kv := range next.kvs {
		if kv.Key != want[i].Key || kv.ModifyIndex != want[i].ModifyIndex || !bytes.Equal(kv.Value, want[i].Value) {
			t.Errorf("record %s from the log: index %d, %s; a read gives index %d, %s", kv.Key, kv.ModifyIndex, kv.Value, want[i].ModifyIndex, want[i].Value)
		}
	}
	e1.deleteEndpoint(net1, ep3)
	if gone := e2.d.nextListing(ctx, key, next); gone.err != nil || len(gone.kvs) != 2 {
		t.Fatalf("after a logged removal: records %v, err %v; want ep1 and ep2", keysOf(gone.kvs), gone.err)
	}
	for _, id := range []string{ep1, ep2} {
		e1.deleteEndpoint(net1, id)
	}
	e1.deleteNetwork(net1)
	e2.deleteNetwork(net1)
	e1.wantNoKeys()
}

// A change's record has the index of the next change's Prev, the last one
// the log's own; where that is unknown (a change without Prev, written by
// noteChanges or an earlier version) or the record was removed since, or
// it is older than the last carriedRecords changes, the record is read.
func TestChangeLogCarried(t *testing.T) {
	const net = "198.19.1.0_24"
	rec := func(id string) []store.Op {
		return []store.Op{store.Create(keys.Endpoint(net, id), []byte(`{"id":"`+id+`"}`))}
	}
	l := ChangeLog{}.withWrite(net, 10, rec("a"), "a") // written at 11
	l = l.withWrite(net, 11, rec("b"), "b")            // written at 12
	l = l.with("c")                                    // noteChanges, at 13: b's index unknown
	l = l.withWrite(net, 13, rec("d"), "d")            // at 14
	l = l.withWrite(net, 14, nil, "a")                 // a removed, at 15
	l = l.withWrite(net, 15, rec("e"), "e")            // at 16
	got := l.carried(net, 16)
	want := map[string]uint64{"d": 14, "e": 16}
	if len(got) != len(want) {
		t.Fatalf("carried %v; want %v", got, want)
	}
	for id, idx := range want {
		if kv := got[id]; kv.ModifyIndex != idx || kv.Key != keys.Endpoint(net, id) || string(kv.Value) != `{"id":"`+id+`"}` {
			t.Errorf("carried %s = %s %q at %d; want index %d", id, kv.Key, kv.Value, kv.ModifyIndex, idx)
		}
	}
	for i := range changeLogSize {
		l = l.withWrite(net, uint64(16+i), rec(fmt.Sprint("x", i)), fmt.Sprint("x", i))
	}
	if got := l.carried(net, uint64(16+changeLogSize)); len(got) != carriedRecords {
		t.Errorf("%d records carried after %d adds; want the last %d", len(got), changeLogSize, carriedRecords)
	}
}

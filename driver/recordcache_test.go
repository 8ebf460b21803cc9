package driver

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// A change of one endpoint record makes the peer watcher decode that
// record only, however many the network has (issue #13: it decoded the
// whole listing four times per change); the peers it programs are those
// of a fresh decode, and a removed record leaves the cache.
func TestWatcherDecodesOnlyChangedRecords(t *testing.T) {
	const vni = 0x100001
	e := newEnv(t)
	if err := e.plane.EnsureNetwork(dataplane.NetworkConfig{VNI: vni}); err != nil {
		t.Fatal(err)
	}
	record := func(i int, index uint64, vtep string) store.KV {
		ep := Endpoint{ID: fmt.Sprintf("%064x", i+1), Network: "n", Host: "h2", VTEP: netip.MustParseAddr(vtep),
			Addrs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("198.19.1.%d/24", i+2))}, MAC: fmt.Sprintf("02:42:c6:13:01:%02x", i+2)}
		b, err := json.Marshal(ep)
		if err != nil {
			t.Fatal(err)
		}
		return store.KV{Key: keys.Endpoint("n", ep.ID), Value: b, ModifyIndex: index}
	}
	decodes := func(endpoints int) int {
		w := &watcher{key: "n", vni: vni, recs: newRecordCache(), logged: map[string]bool{}, lagged: map[string]bool{}}
		var kvs []store.KV
		for i := range endpoints {
			kvs = append(kvs, record(i, uint64(10+i), "198.18.0.12"))
		}
		if err := e.d.program(w, kvs, true); err != nil {
			t.Fatal(err)
		}
		before := w.recs.decoded
		kvs[0] = record(0, 1000, "198.18.0.13") // moved to another VTEP
		if err := e.d.program(w, kvs[:len(kvs)-1], true); err != nil {
			t.Fatal(err)
		}
		got := peerStrings(e.plane.peers[vni])
		want := peerStrings(e.d.peers(kvs[:len(kvs)-1], map[string]bool{}))
		if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != endpoints-1 {
			t.Fatalf("%d endpoints: programmed %v, want %v", endpoints, got, want)
		}
		if len(w.recs.m) != endpoints-1 {
			t.Fatalf("%d endpoints, one removed: the cache holds %d records", endpoints, len(w.recs.m))
		}
		return w.recs.decoded - before
	}
	few, many := decodes(3), decodes(40)
	if few != 1 || many != 1 {
		t.Fatalf("one changed record made the watcher decode %d records of 3, %d of 40; want 1", few, many)
	}
}

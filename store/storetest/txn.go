package storetest

import (
	"time"

	"github.com/vxnet/vxnet/store"
)

// testTxn: a transaction applies all its operations at one index, or none
// when one condition fails (naming that key), and wakes watchers.
func testTxn(h *harness) {
	a, b, c := h.key("txn/a"), h.key("txn/b"), h.key("txn/c")
	ic := h.mustPut(c, []byte("old"))
	_, index := h.mustList(h.key("txn/"))
	wake := make(chan watchResult, 1)
	go func() {
		kvs, next, err := h.s.Watch(h.ctx(), h.key("txn/"), index)
		wake <- watchResult{kvs, next, err}
	}()
	err := h.s.Txn(h.ctx(), []store.Op{store.Create(a, []byte("A")), {Verb: store.VerbPut, Key: b, Value: []byte("B")}, {Verb: store.VerbDelete, Key: c}})
	if err != nil {
		h.t.Fatalf("Txn: %v", err)
	}
	kvs, _ := h.mustList(h.key("txn/"))
	if len(kvs) != 2 || kvs[0].Key != a || kvs[1].Key != b || kvs[0].ModifyIndex != kvs[1].ModifyIndex || kvs[0].ModifyIndex <= ic {
		h.t.Errorf("after Txn: listing %v, want %q and %q at one index above %d", kvs, a, b, ic)
	}
	select {
	case w := <-wake:
		if w.err != nil || len(w.kvs) != 2 {
			h.t.Errorf("watch during Txn: %d keys, err %v; want the 2 written", len(w.kvs), w.err)
		}
	case <-time.After(watchWake):
		h.t.Errorf("watch not woken by Txn within %v", watchWake)
	}

	// A failed condition anywhere writes nothing.
	ia := kvs[0].ModifyIndex
	err = h.s.Txn(h.ctx(), []store.Op{{Verb: store.VerbPut, Key: c, Value: []byte("C")}, store.Create(a, []byte("again"))})
	wantErr(h.t, "Txn creating an existing key", err, store.ErrConflict, a)
	h.wantMissing(c)
	h.wantGet(a, []byte("A"), ia)
	err = h.s.Txn(h.ctx(), []store.Op{{Verb: store.VerbCAS, Key: b, Value: []byte("B2"), Index: ia - 1}, {Verb: store.VerbDelete, Key: a}})
	wantErr(h.t, "Txn with a stale index", err, store.ErrConflict, b)
	h.wantGet(a, []byte("A"), ia)
	if err := h.s.Txn(h.ctx(), []store.Op{{Verb: store.VerbCAS, Key: b, Value: []byte("B2"), Index: ia}}); err != nil {
		h.t.Errorf("Txn CAS at the current index: %v", err)
	}

	for _, bad := range [][]store.Op{nil, {store.Create(a, nil), store.Create(a, nil)}, make([]store.Op, store.MaxTxnOps+1)} {
		if err := h.s.Txn(h.ctx(), bad); err == nil {
			h.t.Errorf("Txn of %d operations (duplicate or too many) succeeded", len(bad))
		}
	}
	h.wantGet(a, []byte("A"), ia)
}

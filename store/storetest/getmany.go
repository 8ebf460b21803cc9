package storetest

import (
	"bytes"
	"fmt"

	"github.com/vxnet/vxnet/store"
)

// testGetMany: a backend reads several keys at once (store.MultiGetter)
// as Get reads each, past one transaction's worth of keys, and leaves
// absent keys out (a deleted one, one never written).
func testGetMany(h *harness) {
	if _, ok := h.s.(store.MultiGetter); !ok {
		h.t.Fatalf("%T reads no keys together (store.MultiGetter)", h.s)
	}
	var ks []string
	for i := range store.MaxTxnOps + 3 {
		k := h.key(fmt.Sprintf("m/%03d", i))
		ks = append(ks, k)
		h.mustPut(k, []byte("value of "+k))
	}
	check := func(ks []string, absent ...string) {
		h.t.Helper()
		got, err := store.GetMany(h.ctx(), h.s, ks)
		if err != nil {
			h.t.Fatalf("GetMany of %d keys: %v", len(ks), err)
		}
		gone := map[string]bool{}
		for _, k := range absent {
			gone[k] = true
		}
		for _, k := range ks {
			kv, ok := got[k]
			if gone[k] {
				if ok {
					h.t.Errorf("GetMany returned absent key %q: %+v", k, kv)
				}
				continue
			}
			want := h.mustGet(k)
			if !ok || kv.Key != k || !bytes.Equal(kv.Value, want.Value) || kv.ModifyIndex != want.ModifyIndex {
				h.t.Errorf("GetMany[%q] = %+v (found %v); Get has %+v", k, kv, ok, want)
			}
		}
		if len(got) != len(ks)-len(absent) {
			h.t.Errorf("GetMany of %d keys returned %d, want %d", len(ks), len(got), len(ks)-len(absent))
		}
	}
	check(ks)
	deleted, never := h.key("m/010"), h.key("m/never")
	h.mustDelete(deleted)
	check(append(ks, never), deleted, never)
}

package storetest

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/vxnet/vxnet/store"
)

// testReadMany: a backend lists prefixes and reads keys in one read
// (store.ManyReader): each listing as List has it, each key present as
// Get has it, absent keys left out, past one transaction's worth of
// keys (Consul takes 128 operations). Nested prefixes are refused.
func testReadMany(h *harness) {
	mr, ok := h.s.(store.ManyReader)
	if !ok {
		h.t.Fatalf("%T cannot list and read in one request (store.ManyReader)", h.s)
	}
	prefixes := []string{h.key("m/a/"), h.key("m/empty/")}
	for _, k := range []string{"m/a/1", "m/a/2", "m/ab"} {
		h.mustPut(h.key(k), []byte("value of "+k))
	}
	var ks []string
	for i := range 130 {
		k := h.key(fmt.Sprintf("m/k/%03d", i))
		if i%3 != 0 { // every third absent
			h.mustPut(k, []byte("v of "+k))
		}
		ks = append(ks, k)
	}
	lists, got, err := mr.ReadMany(h.ctx(), prefixes, ks)
	if err != nil {
		h.t.Fatalf("ReadMany: %v", err)
	}
	same := func(a, b store.KV) bool {
		return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.ModifyIndex == b.ModifyIndex
	}
	for _, p := range prefixes {
		listed, _, err := h.s.List(h.ctx(), p)
		if err != nil {
			h.t.Fatal(err)
		}
		kvs, ok := lists[p]
		if !ok || !slices.EqualFunc(kvs, listed, same) {
			h.t.Errorf("ReadMany listed %q as %+v (present %v); List has %+v", p, kvs, ok, listed)
		}
	}
	n := 0
	for _, k := range ks {
		kv, err := h.s.Get(h.ctx(), k)
		have, in := got[k]
		switch {
		case err != nil && in:
			h.t.Errorf("ReadMany read %q, which Get has absent (%v)", k, err)
		case err == nil && (!in || !same(have, kv)):
			h.t.Errorf("ReadMany read %q as %+v (present %v); Get has %+v", k, have, in, kv)
		case err == nil:
			n++
		}
	}
	if n == 0 || len(got) != n {
		h.t.Errorf("ReadMany read %d keys; %d are present", len(got), n)
	}
	if _, _, err := mr.ReadMany(h.ctx(), []string{h.key("m/"), h.key("m/a/")}, nil); err == nil {
		h.t.Errorf("ReadMany of nested prefixes succeeded")
	}
}

package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sort"

	"github.com/vxnet/vxnet/store"
)

// testReadRound: a backend lists prefixes and checks indexes in one read
// (store.RoundReader): each listing as List has it, and the keys moved
// from known indexes as Changed names them, past two transactions' worth
// of keys (Consul's limit is 128 operations); a listing it leaves out
// (Consul rolls back a transaction whose check failed) is one callers
// make themselves. Nested prefixes are refused.
func testReadRound(h *harness) {
	rr, ok := h.s.(store.RoundReader)
	if !ok {
		h.t.Fatalf("%T cannot read a round in one request (store.RoundReader)", h.s)
	}
	prefixes := []string{h.key("r/a/"), h.key("r/b/"), h.key("r/empty/")}
	for _, k := range []string{"r/a/1", "r/a/2", "r/b/1", "r/bb"} {
		h.mustPut(h.key(k), []byte("value of "+k))
	}
	known := map[string]uint64{}
	for i := range 2*128 + 3 {
		k := h.key(fmt.Sprintf("r/k/%03d", i))
		known[k] = h.mustPut(k, []byte("v"))
	}
	read := func(want ...string) {
		h.t.Helper()
		lists, changed, err := rr.ReadRound(h.ctx(), prefixes, known)
		if err != nil {
			h.t.Fatalf("ReadRound: %v", err)
		}
		sort.Strings(changed)
		sort.Strings(want)
		if !slices.Equal(changed, want) && len(changed)+len(want) > 0 {
			h.t.Errorf("ReadRound changed = %v, want %v", changed, want)
		}
		if len(want) == 0 && len(lists) != len(prefixes) {
			h.t.Errorf("ReadRound without a change listed %d of %d prefixes", len(lists), len(prefixes))
		}
		for p, kvs := range lists {
			listed, _, err := h.s.List(h.ctx(), p)
			if err != nil {
				h.t.Fatal(err)
			}
			if !slices.EqualFunc(kvs, listed, func(a, b store.KV) bool {
				return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.ModifyIndex == b.ModifyIndex
			}) {
				h.t.Errorf("ReadRound listed %q as %+v; List has %+v", p, kvs, listed)
			}
		}
	}
	read()
	rewritten, deleted := h.key("r/k/001"), h.key("r/k/200") // in two transactions
	h.mustPut(rewritten, []byte("v2"))
	h.mustDelete(deleted)
	read(rewritten, deleted)
	if _, _, err := rr.ReadRound(h.ctx(), []string{h.key("r/"), h.key("r/a/")}, nil); err == nil {
		h.t.Errorf("ReadRound of nested prefixes succeeded")
	}
}

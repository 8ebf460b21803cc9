package storetest

import (
	"slices"
	"sort"

	"github.com/vxnet/vxnet/store"
)

// testChanged: a backend tells which keys moved from known indexes
// (store.IndexChecker): none when nothing was written, a rewritten key
// and a deleted key when they were, also past one transaction's worth of
// keys.
func testChanged(h *harness) {
	if _, ok := h.s.(store.IndexChecker); !ok {
		h.t.Fatalf("%T cannot check key indexes (store.IndexChecker)", h.s)
	}
	known := map[string]uint64{}
	for i := range store.MaxTxnOps + 3 {
		k := h.key("c/" + string(rune('a'+i/26)) + string(rune('a'+i%26)))
		known[k] = h.mustPut(k, []byte("v"))
	}
	check := func(want ...string) {
		h.t.Helper()
		got, err := store.Changed(h.ctx(), h.s, known)
		if err != nil {
			h.t.Fatalf("Changed: %v", err)
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) && len(got)+len(want) > 0 {
			h.t.Errorf("Changed = %v, want %v", got, want)
		}
	}
	check()
	rewritten, deleted := h.key("c/ab"), h.key("c/co") // the second transaction
	h.mustPut(rewritten, []byte("v2"))
	h.mustDelete(deleted)
	check(rewritten, deleted)
	known[h.key("c/never")] = 7
	check(rewritten, deleted, h.key("c/never"))
}

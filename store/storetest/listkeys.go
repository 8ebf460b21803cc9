package storetest

import (
	"slices"

	"github.com/vxnet/vxnet/store"
)

// testListKeys: a backend lists keys without values (store.KeyLister),
// the same keys in the same order as List, and none for an empty prefix.
func testListKeys(h *harness) {
	if _, ok := h.s.(store.KeyLister); !ok {
		h.t.Fatalf("%T lists no keys without their values (store.KeyLister)", h.s)
	}
	for _, rel := range []string{"a/c", "a/b", "a/b/d", "ab/x", "b/z"} {
		h.mustPut(h.key(rel), []byte("value of "+rel))
	}
	for _, rel := range []string{"a/", "a", "none/"} {
		kvs, _ := h.mustList(h.key(rel))
		got, err := store.ListKeys(h.ctx(), h.s, h.key(rel))
		if err != nil {
			h.t.Fatalf("ListKeys(%q): %v", h.key(rel), err)
		}
		if want := keys(kvs); !slices.Equal(got, want) && len(got)+len(want) > 0 {
			h.t.Errorf("ListKeys(%q) = %v; List has %v", h.key(rel), got, want)
		}
	}
}

package storetest

import (
	"bytes"
	"strings"

	"github.com/vxnet/vxnet/store"
)

// testGetMissing: Get of an absent key wraps ErrNotFound and names the key,
// also once the key was written and deleted.
func testGetMissing(h *harness) {
	key := h.key("missing")
	h.wantMissing(key)
	h.mustPut(key, []byte("v"))
	h.mustDelete(key)
	h.wantMissing(key)
}

// testPutGet: values come back byte for byte with the index Put returned.
func testPutGet(h *harness) {
	values := []struct {
		name  string
		value []byte
	}{
		{"text", []byte("value")},
		{"empty", []byte{}},
		{"binary", []byte{0, 0xff, '\n', 0, '/'}},
		{"large", bytes.Repeat([]byte("0123456789abcdef"), 4096)},
	}
	for _, v := range values {
		key := h.key("kv/" + v.name)
		idx := h.mustPut(key, v.value)
		h.wantGet(key, v.value, idx)
	}
	key := h.key("kv/text")
	idx := h.mustPut(key, []byte("overwritten"))
	h.wantGet(key, []byte("overwritten"), idx)
	nested := h.key("deep/ly/nested/key")
	idx = h.mustPut(nested, []byte("n"))
	h.wantGet(nested, []byte("n"), idx)
}

// testIndexIncreases: every write, on any key, gets a larger index than
// anything handed out before, List's index included; deletes move List's
// index forward.
func testIndexIncreases(h *harness) {
	k1, k2 := h.key("p/one"), h.key("p/two")
	var last uint64
	next := func(op string, idx uint64) {
		h.t.Helper()
		if idx <= last {
			h.t.Errorf("%s: ModifyIndex %d, not above the previous %d", op, idx, last)
		}
		last = idx
	}
	next("Put one", h.mustPut(k1, []byte("1")))
	i2 := h.mustPut(k2, []byte("2"))
	next("Put two", i2)
	next("Put one again", h.mustPut(k1, []byte("1b")))
	next("CAS two", h.mustCAS(k2, []byte("2b"), i2))

	kvs, listIdx := h.mustList(h.key("p/"))
	for _, kv := range kvs {
		if kv.ModifyIndex > listIdx {
			h.t.Errorf("List index %d is below ModifyIndex %d of %q", listIdx, kv.ModifyIndex, kv.Key)
		}
	}
	if listIdx < last {
		h.t.Errorf("List index %d is below the last write's %d", listIdx, last)
	}
	last = listIdx
	next("Put after List", h.mustPut(k1, []byte("1c")))

	h.mustDelete(k2)
	_, afterDelete := h.mustList(h.key("p/"))
	next("List after Delete", afterDelete)
	next("Put after Delete", h.mustPut(k2, []byte("2c")))
}

// testCASCreate: CAS with index 0 creates the key only if it is absent.
func testCASCreate(h *harness) {
	key := h.key("cas0")
	idx := h.mustCAS(key, []byte("first"), 0)
	_, err := h.s.CAS(h.ctx(), key, []byte("second"), 0)
	wantErr(h.t, "CAS 0 on existing key", err, store.ErrConflict, key)
	h.wantGet(key, []byte("first"), idx)

	h.mustDelete(key)
	idx = h.mustCAS(key, []byte("again"), 0)
	h.wantGet(key, []byte("again"), idx)
}

// testCASIndex: CAS succeeds with the current index only.
func testCASIndex(h *harness) {
	key := h.key("cas")
	i1 := h.mustPut(key, []byte("v1"))
	i2 := h.mustPut(key, []byte("v2"))
	_, err := h.s.CAS(h.ctx(), key, []byte("stale"), i1)
	wantErr(h.t, "CAS with stale index", err, store.ErrConflict, key)
	h.wantGet(key, []byte("v2"), i2)

	i3 := h.mustCAS(key, []byte("v3"), i2)
	if i3 <= i2 {
		h.t.Errorf("CAS returned ModifyIndex %d, not above %d", i3, i2)
	}
	h.wantGet(key, []byte("v3"), i3)
	_, err = h.s.CAS(h.ctx(), key, []byte("stale"), i2)
	wantErr(h.t, "CAS with index used up", err, store.ErrConflict, key)

	missing := h.key("cas-missing")
	_, err = h.s.CAS(h.ctx(), missing, []byte("v"), i3)
	wantErr(h.t, "CAS on missing key", err, store.ErrConflict, missing)
	h.wantMissing(missing)
}

// testDelete: Delete is idempotent and removes exactly one key.
func testDelete(h *harness) {
	key := h.key("d")
	h.mustDelete(key)
	h.mustPut(key, []byte("v"))
	child, sibling := h.key("d/child"), h.key("dd")
	h.mustPut(child, []byte("c"))
	h.mustPut(sibling, []byte("s"))
	h.mustDelete(key)
	h.wantMissing(key)
	h.mustDelete(key)
	h.wantGet(child, []byte("c"), 0)
	h.wantGet(sibling, []byte("s"), 0)
}

// testDeleteCAS: DeleteCAS removes the key only at its current index.
func testDeleteCAS(h *harness) {
	key := h.key("dcas")
	i1 := h.mustPut(key, []byte("v1"))
	i2 := h.mustPut(key, []byte("v2"))
	for _, bad := range []uint64{i1, 0, i2 + 1000} {
		err := h.s.DeleteCAS(h.ctx(), key, bad)
		wantErr(h.t, "DeleteCAS with wrong index", err, store.ErrConflict, key)
	}
	h.wantGet(key, []byte("v2"), i2)
	if err := h.s.DeleteCAS(h.ctx(), key, i2); err != nil {
		h.t.Fatalf("DeleteCAS(%q, %d) at current index: %v", key, i2, err)
	}
	h.wantMissing(key)
	err := h.s.DeleteCAS(h.ctx(), key, i2)
	wantErr(h.t, "DeleteCAS on missing key", err, store.ErrConflict, key)
}

// testList: List is a plain prefix scan, sorted by key, with values and
// indexes as Get returns them.
func testList(h *harness) {
	writes := []string{"a/c", "a/b", "a/b/d", "a/a", "ab/x", "a", "b/z"}
	for _, rel := range writes {
		h.mustPut(h.key(rel), []byte("value of "+rel))
	}
	var want []store.KV
	for _, rel := range []string{"a/a", "a/b", "a/b/d", "a/c"} {
		want = append(want, h.mustGet(h.key(rel)))
	}
	got, idx := h.mustList(h.key("a/"))
	if diff := sameList(got, want); diff != "" {
		h.t.Errorf("List(%q): %s", h.key("a/"), diff)
	}
	for _, kv := range got {
		if kv.ModifyIndex > idx {
			h.t.Errorf("List index %d is below ModifyIndex %d of %q", idx, kv.ModifyIndex, kv.Key)
		}
	}

	all, _ := h.mustList(h.key("a"))
	if len(all) != 6 {
		h.t.Errorf("List(%q) = %v, want the 6 keys starting with it", h.key("a"), keys(all))
	}
	for i := 1; i < len(all); i++ {
		if strings.Compare(all[i-1].Key, all[i].Key) >= 0 {
			h.t.Errorf("List(%q) not sorted: %v", h.key("a"), keys(all))
			break
		}
	}

	none, _ := h.mustList(h.key("none/"))
	if len(none) != 0 {
		h.t.Errorf("List(%q) = %v, want nothing", h.key("none/"), keys(none))
	}
}

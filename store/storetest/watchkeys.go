package storetest

import (
	"context"
	"slices"
	"time"

	"github.com/vxnet/vxnet/store"
)

// testWatchKeys: store.WatchKeys wakes on a write and on a delete under
// the prefix, answers with the keys List has and an index at least the
// write's, not on writes outside the prefix (early returns keep the
// index), and at once from index 0.
func testWatchKeys(h *harness) {
	prefix := h.key("k/")
	h.mustPut(prefix+"a", []byte("a"))
	_, idx := h.mustList(prefix)
	wait := func(from uint64, want []string) uint64 {
		h.t.Helper()
		ctx, cancel := context.WithTimeout(h.ctx(), writeDelay+watchWake)
		defer cancel()
		for n := 0; ; n++ {
			ks, next, err := store.WatchKeys(ctx, h.s, prefix, from)
			if err != nil {
				h.t.Fatalf("WatchKeys(%q, %d) after %d returns: %v", prefix, from, n, err)
			}
			if slices.Equal(ks, want) && next > from {
				return next
			}
			if n == maxEarly {
				h.t.Fatalf("WatchKeys(%q) returned %d times without %v (last %v at %d): busy loop", prefix, n, want, ks, next)
			}
			from = next
		}
	}
	var putIdx uint64
	wrote := h.later(func(ctx context.Context) (uint64, error) {
		var err error
		putIdx, err = h.s.Put(ctx, prefix+"b", []byte("b"))
		return putIdx, err
	})
	next := wait(idx, []string{prefix + "a", prefix + "b"})
	if err := <-wrote; err != nil {
		h.t.Fatal(err)
	}
	if next < putIdx {
		h.t.Errorf("WatchKeys index %d is below the Put's %d", next, putIdx)
	}
	deleted := h.later(func(ctx context.Context) (uint64, error) { return 0, h.s.Delete(ctx, prefix+"a") })
	next = wait(next, []string{prefix + "b"})
	if err := <-deleted; err != nil {
		h.t.Fatal(err)
	}
	outside := h.later(func(ctx context.Context) (uint64, error) { return h.s.Put(ctx, h.key("k-outside"), []byte("x")) })
	ctx, cancel := context.WithTimeout(h.ctx(), quietWindow)
	defer cancel()
	for n := 0; ctx.Err() == nil; n++ {
		ks, at, err := store.WatchKeys(ctx, h.s, prefix, next)
		if err == nil && (at != next || !slices.Equal(ks, []string{prefix + "b"})) {
			h.t.Fatalf("WatchKeys(%q, %d) reported %v at %d after a write outside the prefix", prefix, next, ks, at)
		}
		if n == maxEarly {
			h.t.Fatalf("WatchKeys(%q) returned %d times with nothing changed: busy loop", prefix, n)
		}
	}
	if err := <-outside; err != nil {
		h.t.Fatal(err)
	}
	start := time.Now()
	if ks, at, err := store.WatchKeys(h.ctx(), h.s, prefix, 0); err != nil || at < next || len(ks) != 1 || time.Since(start) > quietWindow {
		h.t.Errorf("WatchKeys(%q, 0) = %v at %d, %v after %v; want [b] at once", prefix, ks, at, err, time.Since(start))
	}
}

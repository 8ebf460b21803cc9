package storetest

import (
	"context"
	"errors"
	"time"

	"github.com/vxnet/vxnet/store"
)

const (
	// writeDelay lets a Watch started by the test block before the write
	// that should wake it.
	writeDelay = 200 * time.Millisecond
	// maxEarly bounds the early returns of Watch over one wait: more is a
	// busy loop.
	maxEarly = 20
)

// later runs write in another goroutine after writeDelay; the returned
// channel gets its result.
func (h *harness) later(write func(ctx context.Context) (uint64, error)) <-chan error {
	ctx := h.ctx()
	done := make(chan error, 1)
	go func() {
		time.Sleep(writeDelay)
		_, err := write(ctx)
		done <- err
	}()
	return done
}

// watchResult is what one Watch call returned.
type watchResult struct {
	kvs   []store.KV
	index uint64
	err   error
}

// watch calls Watch in another goroutine and fails the test if it has not
// returned within limit, so a Watch that ignores its ctx fails instead of
// hanging the test binary.
func (h *harness) watch(ctx context.Context, prefix string, index uint64, limit time.Duration) watchResult {
	h.t.Helper()
	res := make(chan watchResult, 1)
	go func() {
		kvs, next, err := h.s.Watch(ctx, prefix, index)
		res <- watchResult{kvs, next, err}
	}()
	select {
	case r := <-res:
		return r
	case <-time.After(limit):
		h.t.Fatalf("Watch(%q, %d) still blocked after %v", prefix, index, limit)
		return watchResult{}
	}
}

// watchUntil re-watches prefix from index, as a watcher does, until done
// holds for the listing; it fails if that takes longer than watchWake after
// the pending write.
func (h *harness) watchUntil(prefix string, index uint64, done func([]store.KV) bool) ([]store.KV, uint64) {
	h.t.Helper()
	limit := writeDelay + watchWake
	ctx, cancel := context.WithTimeout(h.t.Context(), limit)
	defer cancel()
	for n := 0; ; n++ {
		r := h.watch(ctx, prefix, index, limit+quietWindow)
		if r.err != nil {
			h.t.Fatalf("Watch(%q, %d) after %d returns: %v", prefix, index, n, r.err)
		}
		if done(r.kvs) {
			return r.kvs, r.index
		}
		if n == maxEarly {
			h.t.Fatalf("Watch(%q) returned %d times without the change: busy loop", prefix, n)
		}
		index = r.index
	}
}

// waitQuiet watches prefix from index until ctx ends and fails if Watch
// reports a change meanwhile: early returns must keep listing and index.
// When ctx ends, Watch must fail with an error wrapping ctx.Err().
func (h *harness) waitQuiet(ctx context.Context, prefix string, want []store.KV, index uint64) {
	h.t.Helper()
	for n := 0; ; n++ {
		r := h.watch(ctx, prefix, index, quietWindow+watchWake)
		if r.err != nil {
			if ctx.Err() == nil {
				h.t.Fatalf("Watch(%q, %d) failed before ctx ended: %v", prefix, index, r.err)
			}
			if !errors.Is(r.err, ctx.Err()) {
				h.t.Errorf("Watch(%q, %d) when ctx ended: error %q does not wrap %v", prefix, index, r.err, ctx.Err())
			}
			return
		}
		if diff := sameList(r.kvs, want); diff != "" {
			h.t.Fatalf("Watch(%q, %d) reported a change: %s", prefix, index, diff)
		}
		if r.index != index {
			h.t.Fatalf("Watch(%q, %d) returned index %d with nothing changed under the prefix", prefix, index, r.index)
		}
		if n == maxEarly {
			h.t.Fatalf("Watch(%q) returned %d times with nothing changed: busy loop", prefix, n)
		}
	}
}

// testWatchPut: a Put under the prefix from another goroutine wakes Watch.
func testWatchPut(h *harness) {
	prefix := h.key("w/")
	h.mustPut(prefix+"old", []byte("o"))
	h.mustPut(h.key("w"), []byte("outside the prefix"))
	_, idx := h.mustList(prefix)
	key := prefix + "new"
	var putIdx uint64
	wrote := h.later(func(ctx context.Context) (uint64, error) {
		var err error
		putIdx, err = h.s.Put(ctx, key, []byte("n"))
		return putIdx, err
	})
	kvs, next := h.watchUntil(prefix, idx, func(kvs []store.KV) bool {
		_, ok := find(kvs, key)
		return ok
	})
	if err := <-wrote; err != nil {
		h.t.Fatalf("Put(%q): %v", key, err)
	}
	if kv, _ := find(kvs, key); kv.ModifyIndex != putIdx || string(kv.Value) != "n" {
		h.t.Errorf("Watch listed %q=%q@%d, want %q@%d", key, kv.Value, kv.ModifyIndex, "n", putIdx)
	}
	if next < putIdx {
		h.t.Errorf("Watch index %d is below the Put's %d", next, putIdx)
	}
	if want, _ := h.mustList(prefix); sameList(kvs, want) != "" {
		h.t.Errorf("Watch(%q) listing differs from List: %s", prefix, sameList(kvs, want))
	}
}

// testWatchDelete: a Delete under the prefix wakes Watch.
func testWatchDelete(h *harness) {
	prefix := h.key("w/")
	keep, gone := prefix+"keep", prefix+"gone"
	h.mustPut(keep, []byte("k"))
	h.mustPut(gone, []byte("g"))
	_, idx := h.mustList(prefix)
	deleted := h.later(func(ctx context.Context) (uint64, error) {
		return 0, h.s.Delete(ctx, gone)
	})
	kvs, next := h.watchUntil(prefix, idx, func(kvs []store.KV) bool {
		_, ok := find(kvs, gone)
		return !ok
	})
	if err := <-deleted; err != nil {
		h.t.Fatalf("Delete(%q): %v", gone, err)
	}
	if _, ok := find(kvs, keep); !ok || len(kvs) != 1 {
		h.t.Errorf("Watch listed %v, want only %q", keys(kvs), keep)
	}
	if next <= idx {
		h.t.Errorf("Watch index %d after a Delete, not above the listed %d", next, idx)
	}
}

// testWatchIgnoresOtherPrefixes: writes outside the prefix (including keys
// that merely start with the same characters) do not wake Watch; it returns
// ctx's error when ctx ends.
func testWatchIgnoresOtherPrefixes(h *harness) {
	prefix := h.key("a/")
	h.mustPut(prefix+"k", []byte("v"))
	want, idx := h.mustList(prefix)
	others := []string{h.key("ab/x"), h.key("a"), h.key("b/a/k")}
	wrote := h.later(func(ctx context.Context) (uint64, error) {
		for _, k := range others {
			if _, err := h.s.Put(ctx, k, []byte("other")); err != nil {
				return 0, err
			}
		}
		return 0, nil
	})

	ctx, cancel := context.WithTimeout(h.t.Context(), quietWindow)
	defer cancel()
	h.waitQuiet(ctx, prefix, want, idx)
	if err := <-wrote; err != nil {
		h.t.Fatalf("writes outside %q: %v", prefix, err)
	}
}

// testWatchStaleIndex: a Watch from an index older than the last change
// under the prefix returns at once with the new listing; so does index 0.
func testWatchStaleIndex(h *harness) {
	prefix := h.key("w/")
	key := prefix + "k"
	h.mustPut(key, []byte("v1"))
	h.mustPut(h.key("w-outside"), []byte("outside the prefix"))
	_, idx := h.mustList(prefix)
	i2 := h.mustPut(key, []byte("v2"))
	want, _ := h.mustList(prefix)

	for _, from := range []uint64{idx, 0} {
		ctx, cancel := context.WithTimeout(h.t.Context(), watchWake)
		start := time.Now()
		kvs, next, err := h.s.Watch(ctx, prefix, from)
		cancel()
		if err != nil {
			h.t.Fatalf("Watch(%q, %d): %v", prefix, from, err)
		}
		if took := time.Since(start); took > quietWindow {
			h.t.Errorf("Watch(%q, %d) with a stale index took %v", prefix, from, took)
		}
		if diff := sameList(kvs, want); diff != "" {
			h.t.Errorf("Watch(%q, %d) with a stale index: %s", prefix, from, diff)
		}
		if next < i2 {
			h.t.Errorf("Watch(%q, %d) index %d is below the last write's %d", prefix, from, next, i2)
		}
	}
}

// testWatchCancel: cancelling ctx from another goroutine ends a blocked
// Watch with an error wrapping context.Canceled.
func testWatchCancel(h *harness) {
	prefix := h.key("w/")
	h.mustPut(prefix+"k", []byte("v"))
	want, idx := h.mustList(prefix)
	ctx, cancel := context.WithCancel(h.t.Context())
	defer cancel()
	time.AfterFunc(writeDelay, cancel)
	start := time.Now()
	h.waitQuiet(ctx, prefix, want, idx)
	if took := time.Since(start); took > writeDelay+quietWindow {
		h.t.Errorf("Watch(%q) took %v to notice the cancel", prefix, took-writeDelay)
	}
}

package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/vxnet/vxnet/store"
)

const (
	workers    = 20
	increments = 20
	// maxRetries bounds the CAS retry loop of one increment.
	maxRetries = 1000
)

// increment adds one to the decimal counter at key with a CAS retry loop
// and returns the value it wrote and its index.
func increment(ctx context.Context, s store.Store, key string) (int, uint64, error) {
	for range maxRetries {
		n, index := 0, uint64(0)
		kv, err := s.Get(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return 0, 0, err
		default:
			if n, err = strconv.Atoi(string(kv.Value)); err != nil {
				return 0, 0, fmt.Errorf("counter %q holds %q: %w", key, kv.Value, err)
			}
			index = kv.ModifyIndex
		}
		idx, err := s.CAS(ctx, key, []byte(strconv.Itoa(n+1)), index)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return n + 1, idx, err
	}
	return 0, 0, fmt.Errorf("counter %q: %d CAS conflicts in a row", key, maxRetries)
}

// testConcurrentCAS: concurrent CAS increments never lose an update, and
// every successful CAS got a larger index than the one before it.
func testConcurrentCAS(h *harness) {
	key := h.key("counter")
	ctx, cancel := context.WithTimeout(h.t.Context(), time.Minute)
	defer cancel()
	type write struct {
		value int
		index uint64
	}
	var (
		mu     sync.Mutex
		writes []write
		wg     sync.WaitGroup
	)
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range increments {
				v, idx, err := increment(ctx, h.s, key)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				writes = append(writes, write{v, idx})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.t.Errorf("increment: %v", err)
	}
	const total = workers * increments
	h.wantGet(key, []byte(strconv.Itoa(total)), 0)
	if len(writes) != total {
		h.t.Fatalf("%d successful CAS, want %d", len(writes), total)
	}
	sort.Slice(writes, func(i, j int) bool { return writes[i].value < writes[j].value })
	for i, w := range writes {
		if w.value != i+1 {
			h.t.Fatalf("value %d written by two CAS calls", w.value)
		}
		if i > 0 && w.index <= writes[i-1].index {
			h.t.Errorf("value %d got index %d, not above %d of value %d",
				w.value, w.index, writes[i-1].index, writes[i-1].value)
		}
	}
}

// calls runs every Store method once on key (prefix: key's parent) at
// index, returning each call's error by method name.
func calls(ctx context.Context, s store.Store, prefix, key string, index uint64) map[string]error {
	errs := map[string]error{}
	_, errs["Get"] = s.Get(ctx, key)
	_, errs["Put"] = s.Put(ctx, key, []byte("changed"))
	_, errs["CAS"] = s.CAS(ctx, key, []byte("changed"), index)
	errs["DeleteCAS"] = s.DeleteCAS(ctx, key, index)
	errs["Delete"] = s.Delete(ctx, key)
	_, _, errs["List"] = s.List(ctx, prefix)
	_, _, errs["Watch"] = s.Watch(ctx, prefix, index)
	return errs
}

// testCancelledContext: every call with a cancelled ctx fails with an
// error wrapping context.Canceled and changes nothing.
func testCancelledContext(h *harness) {
	prefix := h.key("c/")
	key := prefix + "k"
	idx := h.mustPut(key, []byte("v"))
	ctx, cancel := context.WithCancel(h.t.Context())
	cancel()
	for op, err := range calls(ctx, h.s, prefix, key, idx) {
		if !errors.Is(err, context.Canceled) {
			h.t.Errorf("%s with cancelled ctx: error %v, want one wrapping %v", op, err, context.Canceled)
		}
	}
	h.wantGet(key, []byte("v"), idx)
}

// testClose: every call after Close fails.
func testClose(h *harness) {
	prefix := h.key("c/")
	key := prefix + "k"
	h.closed = true
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(h.t.Context(), quietWindow)
	defer cancel()
	for op, err := range calls(ctx, h.s, prefix, key, 1) {
		if err == nil {
			h.t.Errorf("%s after Close: no error", op)
		}
	}
	if ctx.Err() != nil {
		h.t.Errorf("calls after Close took until ctx ended instead of failing")
	}
	h.t.Logf("second Close: %v", h.s.Close())
}

// testCloseWakesWatch: Close ends a blocked Watch with an error.
func testCloseWakesWatch(h *harness) {
	prefix := h.key("w/")
	// A write and a delete make the prefix's index non-zero without leaving
	// a key behind the closed store could not clean up.
	h.mustPut(prefix+"k", []byte("v"))
	h.mustDelete(prefix + "k")
	want, idx := h.mustList(prefix)
	ctx, cancel := context.WithTimeout(h.t.Context(), writeDelay+watchWake)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		for range maxEarly {
			kvs, next, err := h.s.Watch(ctx, prefix, idx)
			if err != nil {
				res <- err
				return
			}
			if diff := sameList(kvs, want); diff != "" || next != idx {
				res <- fmt.Errorf("Watch reported a change at index %d: %s", next, diff)
				return
			}
		}
		res <- errors.New("busy loop: Watch kept returning")
	}()
	time.Sleep(writeDelay)
	select {
	case err := <-res:
		h.t.Fatalf("Watch(%q, %d) returned before Close: %v", prefix, idx, err)
	default:
	}
	h.closed = true
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	err := <-res
	if ctx.Err() != nil {
		h.t.Errorf("Watch(%q) still blocked after Close, until ctx ended: %v", prefix, err)
	}
	h.t.Logf("Watch after Close: %v", err)
}

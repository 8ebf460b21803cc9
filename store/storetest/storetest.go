// Package storetest is the contract every store.Store backend must pass.
//
// Design note: a backend's test calls Run with a function that opens a fresh
// store; Run opens one store per subtest and checks each invariant written in
// package store (not-found and conflict errors, strictly increasing
// ModifyIndex, CAS semantics, prefix listing, Watch wake-ups, concurrency,
// cancelled contexts, Close).
//
// The same test runs against bbolt and against a real Consul server, so it is
// backend-neutral:
//   - It assumes nothing about keys it did not write: every subtest works
//     under its own prefix, built from the test name and a random suffix, and
//     deletes what it wrote when it ends.
//   - It never relies on timing tighter than about a second: a Watch must
//     wake within watchWake; "does not return" is checked over a window of
//     quietWindow.
//
// Points of the contract that package store leaves implicit and that Run
// pins down:
//   - ErrNotFound and ErrConflict errors name the key as %q.
//   - When ctx ends, every call, including a blocked Watch, returns an error
//     for which errors.Is(err, ctx.Err()) holds; a cancelled call writes
//     nothing.
//   - Watch "may return early with an unchanged listing": writes outside
//     the prefix may wake it only if it returns the same listing and the
//     same index it was given, and not in a busy loop. A Watch from index 0
//     or from an index older than the last change under the prefix returns
//     at once.
//   - List's index is at least the ModifyIndex of every key it returns, and
//     every later write gets a larger ModifyIndex; deleting a key moves
//     the List index of its prefix forward (so Watch sees deletes).
//   - Close wakes a blocked Watch, which then returns an error.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
)

const (
	// opTimeout bounds every single store call made by the test.
	opTimeout = 10 * time.Second
	// watchWake is how long a Watch may take to notice a change.
	watchWake = 5 * time.Second
	// quietWindow is how long a Watch is observed not returning.
	quietWindow = time.Second
)

// Run checks the store contract. open must return a new, open store each
// time it is called; stores from different calls may share their data (one
// Consul server). Run closes each store when its subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	cases := []struct {
		name string
		fn   func(h *harness)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"IndexIncreases", testIndexIncreases},
		{"CASCreate", testCASCreate},
		{"CASIndex", testCASIndex},
		{"Delete", testDelete},
		{"DeleteCAS", testDeleteCAS},
		{"List", testList},
		{"ListKeys", testListKeys},
		{"Changed", testChanged},
		{"GetMany", testGetMany},
		{"ReadRound", testReadRound},
		{"ReadMany", testReadMany},
		{"Txn", testTxn},
		{"WatchPut", testWatchPut},
		{"WatchDelete", testWatchDelete},
		{"WatchIgnoresOtherPrefixes", testWatchIgnoresOtherPrefixes},
		{"WatchStaleIndex", testWatchStaleIndex},
		{"WatchCancel", testWatchCancel},
		{"WatchKeys", testWatchKeys},
		{"ConcurrentCAS", testConcurrentCAS},
		{"CancelledContext", testCancelledContext},
		{"Close", testClose},
		{"CloseWakesWatch", testCloseWakesWatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(newHarness(t, open))
		})
	}
}

// harness is one subtest's store and key space.
type harness struct {
	t      *testing.T
	s      store.Store
	base   string // unique prefix, ends in "/"
	closed bool   // set by subtests that close the store themselves
}

func newHarness(t *testing.T, open func(t *testing.T) store.Store) *harness {
	t.Helper()
	h := &harness{t: t, s: open(t), base: uniquePrefix(t)}
	t.Cleanup(h.cleanup)
	return h
}

// cleanup deletes every key under the subtest's prefix and closes the store.
func (h *harness) cleanup() {
	if h.closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	kvs, _, err := h.s.List(ctx, h.base)
	if err != nil {
		h.t.Errorf("cleanup: list %q: %v", h.base, err)
	}
	for _, kv := range kvs {
		if err := h.s.Delete(ctx, kv.Key); err != nil {
			h.t.Errorf("cleanup: delete %q: %v", kv.Key, err)
		}
	}
	if err := h.s.Close(); err != nil {
		h.t.Errorf("cleanup: close: %v", err)
	}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// uniquePrefix is "storetest/<test name>-<random>/".
func uniquePrefix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random prefix: %v", err)
	}
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	return "storetest/" + name + "-" + hex.EncodeToString(b[:]) + "/"
}

// key is rel under the subtest's prefix.
func (h *harness) key(rel string) string { return h.base + rel }

// ctx is a context for one call, cancelled when the subtest ends.
func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(h.t.Context(), opTimeout)
	h.t.Cleanup(cancel)
	return ctx
}

func (h *harness) mustPut(key string, value []byte) uint64 {
	h.t.Helper()
	idx, err := h.s.Put(h.ctx(), key, value)
	if err != nil {
		h.t.Fatalf("Put(%q): %v", key, err)
	}
	if idx == 0 {
		h.t.Fatalf("Put(%q) returned ModifyIndex 0", key)
	}
	return idx
}

func (h *harness) mustCAS(key string, value []byte, index uint64) uint64 {
	h.t.Helper()
	idx, err := h.s.CAS(h.ctx(), key, value, index)
	if err != nil {
		h.t.Fatalf("CAS(%q, index %d): %v", key, index, err)
	}
	if idx == 0 {
		h.t.Fatalf("CAS(%q, index %d) returned ModifyIndex 0", key, index)
	}
	return idx
}

func (h *harness) mustDelete(key string) {
	h.t.Helper()
	if err := h.s.Delete(h.ctx(), key); err != nil {
		h.t.Fatalf("Delete(%q): %v", key, err)
	}
}

func (h *harness) mustGet(key string) store.KV {
	h.t.Helper()
	kv, err := h.s.Get(h.ctx(), key)
	if err != nil {
		h.t.Fatalf("Get(%q): %v", key, err)
	}
	return kv
}

func (h *harness) mustList(prefix string) ([]store.KV, uint64) {
	h.t.Helper()
	kvs, idx, err := h.s.List(h.ctx(), prefix)
	if err != nil {
		h.t.Fatalf("List(%q): %v", prefix, err)
	}
	return kvs, idx
}

// wantGet checks that key holds value at index (index 0: any index).
func (h *harness) wantGet(key string, value []byte, index uint64) {
	h.t.Helper()
	kv := h.mustGet(key)
	if kv.Key != key || !bytes.Equal(kv.Value, value) {
		h.t.Errorf("Get(%q) = %q=%q, want %q=%q", key, kv.Key, kv.Value, key, value)
	}
	if index != 0 && kv.ModifyIndex != index {
		h.t.Errorf("Get(%q).ModifyIndex = %d, want %d (returned by the write)", key, kv.ModifyIndex, index)
	}
}

// wantMissing checks that Get(key) fails with ErrNotFound.
func (h *harness) wantMissing(key string) {
	h.t.Helper()
	kv, err := h.s.Get(h.ctx(), key)
	wantErr(h.t, "Get", err, store.ErrNotFound, key)
	if err == nil {
		h.t.Errorf("Get(%q) = %q, want not found", key, kv.Value)
	}
}

// wantErr checks that err wraps target and names subject as %q.
func wantErr(t *testing.T, op string, err, target error, subject string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s(%q): no error, want %v", op, subject, target)
	case !errors.Is(err, target):
		t.Errorf("%s(%q): error %q does not wrap %v", op, subject, err, target)
	case errkind.Of(err) != errkind.Of(target):
		t.Errorf("%s(%q): error %q is of kind %s, want %s", op, subject, err, errkind.Of(err), errkind.Of(target))
	case !strings.Contains(err.Error(), strconv.Quote(subject)):
		t.Errorf("%s(%q): error %q does not name %q", op, subject, err, subject)
	}
}

// sameList reports how two listings differ, or "" if they are equal.
func sameList(got, want []store.KV) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d keys %v, want %d keys %v", len(got), keys(got), len(want), keys(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Key != w.Key || !bytes.Equal(g.Value, w.Value) || g.ModifyIndex != w.ModifyIndex {
			return fmt.Sprintf("entry %d is %q=%q@%d, want %q=%q@%d",
				i, g.Key, g.Value, g.ModifyIndex, w.Key, w.Value, w.ModifyIndex)
		}
	}
	return ""
}

func keys(kvs []store.KV) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

// find returns the entry for key in kvs.
func find(kvs []store.KV, key string) (store.KV, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv, true
		}
	}
	return store.KV{}, false
}

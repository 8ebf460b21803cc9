// Package store is vxnet's cluster state: a small key/value interface with
// two backends, an embedded bbolt file (one host) and Consul (many hosts).
//
// Invariants every backend keeps (checked by storetest.Run):
//   - Keys are slash-separated paths without a leading slash.
//   - Every write gives the key a ModifyIndex that is larger than any index
//     the store handed out before; CAS compares against it, so concurrent
//     writers on many hosts never lose an update.
//   - List returns the store index at read time; Watch with that index blocks
//     until something under the prefix changes after it, so a watcher that
//     re-lists after every return never misses a change.
//
// Every call takes a context and returns when it is done: no Docker callback
// may hang on the store.
package store

import (
	"context"
	"time"

	"github.com/vxnet/vxnet/errkind"
)

// ErrNotFound is returned (wrapped, naming the key) when a key is absent.
var ErrNotFound = errkind.New(errkind.NotFound, "not found")

// ErrConflict is returned (wrapped, naming the key) when a CAS or DeleteCAS
// lost against another writer: the key changed since the given index.
var ErrConflict = errkind.New(errkind.Conflict, "modified concurrently")

// ErrUnavailable is wrapped by failures that say nothing about the data:
// the store could not be reached, had no leader, or did not answer in
// time. The same call may succeed later.
var ErrUnavailable = errkind.New(errkind.Unavailable, "store unavailable")

// KV is one key with its value and the index of its last write.
type KV struct {
	Key         string
	Value       []byte
	ModifyIndex uint64
}

// Store is what vxnet needs of a key/value store.
type Store interface {
	// Get returns the key, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// Put writes unconditionally and returns the key's new ModifyIndex.
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	// CAS writes only if the key's ModifyIndex equals index; index 0 means
	// "only if the key does not exist". It returns the new ModifyIndex, or
	// an error wrapping ErrConflict.
	CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error)
	// Delete removes the key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// DeleteCAS removes the key only if its ModifyIndex equals index. A
	// missing key or another index gives an error wrapping ErrConflict.
	DeleteCAS(ctx context.Context, key string, index uint64) error
	// List returns every key under prefix, sorted by key, and the store
	// index at the time of reading (for Watch).
	List(ctx context.Context, prefix string) ([]KV, uint64, error)
	// Watch blocks until a key under prefix was written or deleted after
	// index, or ctx ends, and returns the listing and index as List does.
	// It may return early with an unchanged listing; callers loop.
	Watch(ctx context.Context, prefix string, index uint64) ([]KV, uint64, error)
	// Txner applies several writes atomically (txn.go).
	Txner
	// Close releases the store. Calls after Close fail.
	Close() error
}

// Ephemeral is implemented by stores that can tie a key to the liveness of
// the process writing it (Consul sessions). If the writer stops calling
// PutEphemeral for longer than the TTL, the store deletes the key itself.
type Ephemeral interface {
	PutEphemeral(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

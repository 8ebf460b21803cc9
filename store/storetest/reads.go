package storetest

import (
	"context"
	"strings"
	"sync"

	"github.com/vxnet/vxnet/store"
)

// ValueReads wraps a store and counts the records under Prefix read with
// their values (Get, List), and with Keys also those listed by key alone
// (ListKeys). It passes the
// index check on (store.IndexChecker) uncounted, as the Consul store and
// the simulation's counting store have it, so a test sees which records a
// caller still reads or lists where the check is at hand.
type ValueReads struct {
	store.Store
	Prefix string
	Keys   bool

	mu       sync.Mutex
	reads    int
	requests int // Get, List and GetMany calls that read a record under Prefix
	checks   int // index checks (Changed calls)
	// GetManyLeader and GetManyStale calls (leaderget.go)
	leaderReads, staleReads int
}

func (r *ValueReads) count(kvs ...store.KV) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.reads
	for _, kv := range kvs {
		if strings.HasPrefix(kv.Key, r.Prefix) {
			r.reads++
		}
	}
	if r.reads > n {
		r.requests++
	}
}

// Get counts the record read.
func (r *ValueReads) Get(ctx context.Context, key string) (store.KV, error) {
	kv, err := r.Store.Get(ctx, key)
	r.count(kv)
	return kv, err
}

// List counts the records listed.
func (r *ValueReads) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	kvs, idx, err := r.Store.List(ctx, prefix)
	r.count(kvs...)
	return kvs, idx, err
}

// GetMany counts the records read, in one request per call, and passes
// the read of several keys on (store.MultiGetter).
func (r *ValueReads) GetMany(ctx context.Context, ks []string) (map[string]store.KV, error) {
	got, err := store.GetMany(ctx, r.Store, ks)
	r.countGot(got)
	return got, err
}

// countGot counts the records of a read of several keys.
func (r *ValueReads) countGot(got map[string]store.KV) {
	kvs := make([]store.KV, 0, len(got))
	for _, kv := range got {
		kvs = append(kvs, kv)
	}
	r.count(kvs...)
}

// ListKeys counts the keys listed, with Keys.
func (r *ValueReads) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	ks, err := store.ListKeys(ctx, r.Store, prefix)
	if r.Keys {
		kvs := make([]store.KV, len(ks))
		for i, k := range ks {
			kvs[i].Key = k
		}
		r.count(kvs...)
	}
	return ks, err
}

// Changed passes the index check on, counting the requests with a key
// under Prefix.
func (r *ValueReads) Changed(ctx context.Context, known map[string]uint64) ([]string, error) {
	for k := range known {
		if strings.HasPrefix(k, r.Prefix) {
			r.mu.Lock()
			r.checks++
			r.mu.Unlock()
			break
		}
	}
	return store.Changed(ctx, r.Store, known)
}

// TakeChecks returns the index checks made since the last TakeChecks.
func (r *ValueReads) TakeChecks() int { return r.take(&r.checks) }

// TakeRequests returns the requests that read records since the last
// TakeRequests.
func (r *ValueReads) TakeRequests() int { return r.take(&r.requests) }

// Take returns the records read since the last Take.
func (r *ValueReads) Take() int { return r.take(&r.reads) }

// take returns *n and zeroes it.
func (r *ValueReads) take(n *int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := *n
	*n = 0
	return v
}

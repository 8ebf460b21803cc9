package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxnet/vxnet/internal/pause"
	"github.com/vxnet/vxnet/store"
)

// simStore is what `vxnet simulate` puts between one simulated host and its
// Consul client: it counts the host's store traffic, and its switch cuts
// the host off (every call fails as unavailable), as a dead host or one
// whose network to Consul is down.
type simStore struct {
	s   store.Store
	e   store.Ephemeral // s's, if it has one
	cut atomic.Bool
	n   *storeCounts
}

// storeCounts is store traffic; a simulation sums it over hosts.
type storeCounts struct {
	Writes, Ephemeral, Reads, Watches, BytesRead atomic.Int64

	mu     sync.Mutex
	byKind map[string]int64 // bytes read by call and first key segment, e.g. "watch endpoints"

	calls callCounts
}

// readBytes adds n bytes read by op under the key's first segment.
func (c *storeCounts) readBytes(op, key string, n int) {
	c.BytesRead.Add(int64(n))
	kind := op + " " + strings.SplitN(key, "/", 2)[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKind == nil {
		c.byKind = map[string]int64{}
	}
	c.byKind[kind] += int64(n)
}

// kinds returns the bytes read by kind so far.
func (c *storeCounts) kinds() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byKind)
}

// snapshot is storeCounts at one moment.
type snapshot struct{ Writes, Ephemeral, Reads, Watches, BytesRead int64 }

func (c *storeCounts) snapshot() snapshot {
	return snapshot{c.Writes.Load(), c.Ephemeral.Load(), c.Reads.Load(), c.Watches.Load(), c.BytesRead.Load()}
}

func (a snapshot) minus(b snapshot) snapshot {
	return snapshot{a.Writes - b.Writes, a.Ephemeral - b.Ephemeral, a.Reads - b.Reads, a.Watches - b.Watches, a.BytesRead - b.BytesRead}
}

func newSimStore(s store.Store, n *storeCounts) *simStore {
	e, _ := s.(store.Ephemeral)
	return &simStore{s: s, e: e, n: n}
}

func (s *simStore) check(op, key string) error {
	if s.cut.Load() {
		return fmt.Errorf("%s %q: host cut off by the simulation: %w", op, key, store.ErrUnavailable)
	}
	return nil
}

func (s *simStore) read(op, key string, kvs ...store.KV) {
	n := 0
	for _, kv := range kvs {
		n += len(kv.Key) + len(kv.Value)
	}
	s.n.readBytes(op, key, n)
}

func (s *simStore) Get(ctx context.Context, key string) (store.KV, error) {
	if err := s.check("get", key); err != nil {
		return store.KV{}, err
	}
	s.n.Reads.Add(1)
	kv, err := s.s.Get(ctx, key)
	s.n.calls.add("get", key, err)
	s.read("get", key, kv)
	return kv, err
}

// GetMany counts one read per call (the backend's one request per
// store.MaxTxnOps keys, or a Get per key: the count follows the backend),
// named by its first key, and the records as bytes read.
func (s *simStore) GetMany(ctx context.Context, ks []string) (map[string]store.KV, error) {
	return s.getMany(ctx, ks, "get many", store.GetMany)
}

// getMany is GetMany read by get, counted as op.
func (s *simStore) getMany(ctx context.Context, ks []string, op string, get func(context.Context, store.Store, []string) (map[string]store.KV, error)) (map[string]store.KV, error) {
	if len(ks) == 0 {
		return map[string]store.KV{}, nil
	}
	if err := s.check(op, ks[0]); err != nil {
		return nil, err
	}
	s.n.Reads.Add(int64((len(ks) + store.MaxTxnOps - 1) / store.MaxTxnOps))
	got, err := get(ctx, s.s, ks)
	s.n.calls.add(op, ks[0], err)
	kvs := make([]store.KV, 0, len(got))
	for _, kv := range got {
		kvs = append(kvs, kv)
	}
	s.read(op, ks[0], kvs...)
	return got, err
}

// GetManyLeader is GetMany in the backend's default mode
// (store.LeaderGetter), counted as GetMany.
func (s *simStore) GetManyLeader(ctx context.Context, ks []string) (map[string]store.KV, error) {
	return s.getMany(ctx, ks, "get many", store.GetManyLeader)
}

// GetManyStale is GetMany answered by the backend's server the host asks
// (store.StaleGetter), counted apart as "get many stale"; a read the
// backend asked of the leader instead (store.StaleGetFallbacks) counts as
// a "get many stale leader" call too (one host's log rounds: its own).
func (s *simStore) GetManyStale(ctx context.Context, ks []string) (map[string]store.KV, error) {
	f, _ := s.s.(store.StaleGetFallbacks)
	before := staleGetFallbacks(f)
	got, err := s.getMany(ctx, ks, "get many stale", store.GetManyStale)
	if len(ks) > 0 {
		for range staleGetFallbacks(f) - before {
			s.n.calls.add("get many stale leader", ks[0], nil)
		}
	}
	return got, err
}

func staleGetFallbacks(f store.StaleGetFallbacks) uint64 {
	if f == nil {
		return 0
	}
	return f.StaleGetFallbacks()
}

func (s *simStore) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := s.check("put", key); err != nil {
		return 0, err
	}
	s.n.Writes.Add(1)
	idx, err := s.s.Put(ctx, key, value)
	s.n.calls.add("put", key, err)
	return idx, err
}

func (s *simStore) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	if err := s.check("cas", key); err != nil {
		return 0, err
	}
	s.n.Writes.Add(1)
	idx, err := s.s.CAS(ctx, key, value, index)
	s.n.calls.add("cas", key, err)
	return idx, err
}

func (s *simStore) Delete(ctx context.Context, key string) error {
	if err := s.check("delete", key); err != nil {
		return err
	}
	s.n.Writes.Add(1)
	err := s.s.Delete(ctx, key)
	s.n.calls.add("delete", key, err)
	return err
}

func (s *simStore) DeleteCAS(ctx context.Context, key string, index uint64) error {
	if err := s.check("delete", key); err != nil {
		return err
	}
	s.n.Writes.Add(1)
	err := s.s.DeleteCAS(ctx, key, index)
	s.n.calls.add("delete cas", key, err)
	return err
}

func (s *simStore) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	if err := s.check("list", prefix); err != nil {
		return nil, 0, err
	}
	s.n.Reads.Add(1)
	kvs, idx, err := s.s.List(ctx, prefix)
	s.n.calls.add("list", prefix, err)
	s.read("list", prefix, kvs...)
	return kvs, idx, err
}

// ListKeys counts the keys' bytes read, as List counts keys and values.
func (s *simStore) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := s.check("list keys", prefix); err != nil {
		return nil, err
	}
	s.n.Reads.Add(1)
	ks, err := store.ListKeys(ctx, s.s, prefix)
	s.n.calls.add("list keys", prefix, err)
	n := 0
	for _, k := range ks {
		n += len(k)
	}
	s.n.readBytes("list keys", prefix, n)
	return ks, err
}

func (s *simStore) Watch(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	return s.watch(ctx, "watch", prefix, index, func(ctx context.Context, st store.Store, prefix string, index uint64) ([]store.KV, uint64, error) {
		return st.Watch(ctx, prefix, index)
	})
}

// WatchStale is Watch answered by any server (store.StaleWatcher),
// counted apart from Watch; an answer dropped to ask the leader
// (store.StaleFallbacks) counts as a "watch stale leader" call too.
func (s *simStore) WatchStale(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	f, _ := s.s.(store.StaleFallbacks)
	before := staleFallbacks(f)
	kvs, idx, err := s.watch(ctx, "watch stale", prefix, index, store.WatchStale)
	for range staleFallbacks(f) - before { // the host's one heartbeat watcher: its own
		s.n.calls.add("watch stale leader", prefix, nil)
	}
	return kvs, idx, err
}

func staleFallbacks(f store.StaleFallbacks) uint64 {
	if f == nil {
		return 0
	}
	return f.StaleFallbacks()
}

func (s *simStore) watch(ctx context.Context, op, prefix string, index uint64,
	watch func(context.Context, store.Store, string, uint64) ([]store.KV, uint64, error)) ([]store.KV, uint64, error) {
	if err := s.check(op, prefix); err != nil {
		// A cut-off host's watch fails after a while, not at once: no
		// busy loop of failing calls.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return nil, 0, err
	}
	kvs, idx, err := watch(ctx, s.s, prefix, index)
	s.n.calls.add(op, prefix, err)
	if err == nil {
		s.n.Watches.Add(1)
		s.read(op, prefix, kvs...)
	}
	return kvs, idx, err
}

// WatchKeys counts a watch return and the keys' bytes read, as Watch
// counts keys and values, and keeps the backend's keys-only blocking
// query (store.KeyWatcher).
func (s *simStore) WatchKeys(ctx context.Context, prefix string, index uint64) ([]string, uint64, error) {
	if err := s.check("watch keys", prefix); err != nil {
		pause.For(ctx, time.Second) // as Watch: no busy loop of failing calls
		return nil, 0, err
	}
	ks, idx, err := store.WatchKeys(ctx, s.s, prefix, index)
	s.n.calls.add("watch keys", prefix, err)
	if err == nil {
		s.n.Watches.Add(1)
		n := 0
		for _, k := range ks {
			n += len(k)
		}
		s.n.readBytes("watch keys", prefix, n)
	}
	return ks, idx, err
}

// PutEphemeral is the heartbeat's write, held by the Consul session.
func (s *simStore) PutEphemeral(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.check("put ephemeral", key); err != nil {
		return err
	}
	s.n.Ephemeral.Add(1)
	var err error
	if s.e == nil {
		_, err = s.s.Put(ctx, key, value)
	} else {
		err = s.e.PutEphemeral(ctx, key, value, ttl)
	}
	s.n.calls.add("put ephemeral", key, err)
	return err
}

// Lock is the liveness monitors' election and record write
// (store.Locker), held by the Consul session, counted as a write.
func (s *simStore) Lock(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := s.check("lock", key); err != nil {
		return false, err
	}
	l, ok := s.s.(store.Locker)
	if !ok {
		return false, fmt.Errorf("lock %q: %w", key, errors.ErrUnsupported)
	}
	s.n.Writes.Add(1)
	held, err := l.Lock(ctx, key, value, ttl)
	s.n.calls.add("lock", key, err)
	return held, err
}

func (s *simStore) Close() error { return s.s.Close() }

// Txn is one request and one Raft entry on Consul: it counts as one write.
func (s *simStore) Txn(ctx context.Context, ops []store.Op) error {
	if err := s.check("txn", store.TxnKey(ops)); err != nil {
		return err
	}
	s.n.Writes.Add(1)
	err := s.s.Txn(ctx, ops)
	s.n.calls.add("txn", store.TxnKey(ops), err)
	return err
}

// checkMetaBytes is what Consul answers per key of a check-index
// transaction (store.IndexChecker) besides the key: its metadata without
// the value, about 120 bytes of JSON. Counted as read, so the figures
// compare a check with the reads it replaces.
const checkMetaBytes = 120

// Changed counts one read per call, named by its first key, and the keys
// and their metadata as bytes read.
func (s *simStore) Changed(ctx context.Context, known map[string]uint64) ([]string, error) {
	first, n := "", 0
	for k := range known {
		if first == "" || k < first {
			first = k
		}
		n += len(k) + checkMetaBytes
	}
	if err := s.check("check indexes", first); err != nil {
		return nil, err
	}
	s.n.Reads.Add(1)
	changed, err := store.Changed(ctx, s.s, known)
	s.n.calls.add("check indexes", first, err)
	s.n.readBytes("check indexes", first, n)
	return changed, err
}

// ReadRound counts one read per call (on Consul one transaction per 128
// operations), named by its first prefix, and the listings and the
// checked keys' metadata as bytes read.
func (s *simStore) ReadRound(ctx context.Context, prefixes []string, known map[string]uint64) (map[string][]store.KV, []string, error) {
	first, n := "", 0
	if len(prefixes) > 0 {
		first = prefixes[0]
	}
	for k := range known {
		if first == "" {
			first = k
		}
		n += len(k) + checkMetaBytes
	}
	if err := s.check("read round", first); err != nil {
		return nil, nil, err
	}
	s.n.Reads.Add(1)
	lists, changed, err := store.ReadRound(ctx, s.s, prefixes, known)
	s.n.calls.add("read round", first, err)
	for _, kvs := range lists {
		for _, kv := range kvs {
			n += len(kv.Key) + len(kv.Value)
		}
	}
	s.n.readBytes("read round", first, n)
	return lists, changed, err
}

// ReadMany counts one read per call (on Consul one transaction per 128
// operations), named by its first prefix (else key), and the listings and
// records as bytes read.
func (s *simStore) ReadMany(ctx context.Context, prefixes, ks []string) (map[string][]store.KV, map[string]store.KV, error) {
	first := ""
	if len(prefixes) > 0 {
		first = prefixes[0]
	} else if len(ks) > 0 {
		first = ks[0]
	}
	if err := s.check("read many", first); err != nil {
		return nil, nil, err
	}
	s.n.Reads.Add(1)
	lists, got, err := store.ReadMany(ctx, s.s, prefixes, ks)
	s.n.calls.add("read many", first, err)
	n := 0
	for _, kvs := range lists {
		for _, kv := range kvs {
			n += len(kv.Key) + len(kv.Value)
		}
	}
	for _, kv := range got {
		n += len(kv.Key) + len(kv.Value)
	}
	s.n.readBytes("read many", first, n)
	return lists, got, err
}

package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vxnet/vxnet/store"
)

// Store wraps s so every call is timed and its errors counted. A store
// that ties keys to its writer's life (store.Ephemeral) stays one.
func (m *Metrics) Store(s store.Store) store.Store {
	t := &timedStore{s: s, m: m}
	if f, ok := s.(store.StaleFallbacks); ok {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vxnet_store_stale_fallbacks_total",
			Help: "Stale watch answers (heartbeats) dropped, from a server out of touch with the leader, and asked of the leader instead.",
		}, func() float64 { return float64(f.StaleFallbacks()) }))
	}
	e, eph := s.(store.Ephemeral)
	l, locks := s.(store.Locker)
	switch {
	case eph && locks:
		return &timedLocker{timedEphemeral: &timedEphemeral{timedStore: t, e: e}, l: l}
	case eph:
		return &timedEphemeral{timedStore: t, e: e}
	}
	return t
}

type timedStore struct {
	s store.Store
	m *Metrics
}

// observe records one call that started at start and returned err.
func (t *timedStore) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		result = "not_found"
	case errors.Is(err, store.ErrConflict):
		result = "conflict"
	default:
		result = "error"
		t.m.storeErrors.WithLabelValues(op).Inc()
	}
	t.m.storeCalls.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
	// A missing key or a lost CAS is an answer: the store is up.
	if result == "error" {
		t.m.storeResult(err)
	} else {
		t.m.storeResult(nil)
	}
}

func (t *timedStore) Get(ctx context.Context, key string) (store.KV, error) {
	start := time.Now()
	kv, err := t.s.Get(ctx, key)
	t.observe("get", start, err)
	return kv, err
}

func (t *timedStore) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	start := time.Now()
	i, err := t.s.Put(ctx, key, value)
	t.observe("put", start, err)
	return i, err
}

func (t *timedStore) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	start := time.Now()
	i, err := t.s.CAS(ctx, key, value, index)
	t.observe("cas", start, err)
	return i, err
}

func (t *timedStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := t.s.Delete(ctx, key)
	t.observe("delete", start, err)
	return err
}

func (t *timedStore) DeleteCAS(ctx context.Context, key string, index uint64) error {
	start := time.Now()
	err := t.s.DeleteCAS(ctx, key, index)
	t.observe("delete_cas", start, err)
	return err
}

func (t *timedStore) Txn(ctx context.Context, ops []store.Op) error {
	start := time.Now()
	err := t.s.Txn(ctx, ops)
	t.observe("txn", start, err)
	return err
}

func (t *timedStore) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	start := time.Now()
	kvs, i, err := t.s.List(ctx, prefix)
	t.observe("list", start, err)
	return kvs, i, err
}

// ListKeys keeps the wrapped store's keys-only listing (store.KeyLister).
func (t *timedStore) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	start := time.Now()
	ks, err := store.ListKeys(ctx, t.s, prefix)
	t.observe("list_keys", start, err)
	return ks, err
}

// Changed keeps the wrapped store's index check (store.IndexChecker).
func (t *timedStore) Changed(ctx context.Context, known map[string]uint64) ([]string, error) {
	start := time.Now()
	ks, err := store.Changed(ctx, t.s, known)
	t.observe("check_indexes", start, err)
	return ks, err
}

// ReadRound keeps the wrapped store's one read of a reconcile round
// (store.RoundReader).
func (t *timedStore) ReadRound(ctx context.Context, prefixes []string, known map[string]uint64) (map[string][]store.KV, []string, error) {
	start := time.Now()
	lists, changed, err := store.ReadRound(ctx, t.s, prefixes, known)
	t.observe("read_round", start, err)
	return lists, changed, err
}

// ReadMany keeps the wrapped store's listings and reads in one request
// (store.ManyReader).
func (t *timedStore) ReadMany(ctx context.Context, prefixes, ks []string) (map[string][]store.KV, map[string]store.KV, error) {
	start := time.Now()
	lists, got, err := store.ReadMany(ctx, t.s, prefixes, ks)
	t.observe("read_many", start, err)
	return lists, got, err
}

// GetMany keeps the wrapped store's reads of several keys in one
// request (store.MultiGetter).
func (t *timedStore) GetMany(ctx context.Context, ks []string) (map[string]store.KV, error) {
	start := time.Now()
	got, err := store.GetMany(ctx, t.s, ks)
	t.observe("get_many", start, err)
	return got, err
}

// Watch blocks until a change or its context ends, so it is counted, not
// timed; a watch that times out is no store error.
func (t *timedStore) Watch(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	kvs, i, err := t.s.Watch(ctx, prefix, index)
	t.observeWatch(err)
	return kvs, i, err
}

// observeWatch counts one watch that returned err.
func (t *timedStore) observeWatch(err error) {
	switch {
	case err == nil:
		t.m.watches.WithLabelValues("ok").Inc()
		t.m.storeResult(nil)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		t.m.watches.WithLabelValues("timeout").Inc()
	default:
		t.m.watches.WithLabelValues("error").Inc()
		t.m.storeErrors.WithLabelValues("watch").Inc()
		t.m.storeResult(err)
	}
}

func (t *timedStore) Close() error { return t.s.Close() }

type timedEphemeral struct {
	*timedStore
	e store.Ephemeral
}

func (t *timedEphemeral) PutEphemeral(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	start := time.Now()
	err := t.e.PutEphemeral(ctx, key, value, ttl)
	t.observe("put_ephemeral", start, err)
	return err
}

// timedLocker keeps the wrapped store's Lock (store.Locker: the liveness
// monitors' election, on Consul).
type timedLocker struct {
	*timedEphemeral
	l store.Locker
}

func (t *timedLocker) Lock(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	start := time.Now()
	held, err := t.l.Lock(ctx, key, value, ttl)
	t.observe("lock", start, err)
	return held, err
}

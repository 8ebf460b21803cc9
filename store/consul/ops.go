package consul

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
)

// Get returns key, or an error wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	if err := s.checkKey(ctx, "get", key); err != nil {
		return store.KV{}, err
	}
	var pair *api.KVPair
	_, err := s.retry(ctx, s.attempt, func(actx context.Context) (err error) {
		pair, _, err = s.kv.Get(s.path(key), (&api.QueryOptions{RequireConsistent: true}).WithContext(actx))
		return err
	})
	if err != nil {
		return store.KV{}, s.fail(ctx, "get", key, err)
	}
	if pair == nil {
		return store.KV{}, fmt.Errorf("get %q: %w", key, store.ErrNotFound)
	}
	return s.kvOf(pair), nil
}

// Put writes key unconditionally.
func (s *Store) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	op := &api.KVTxnOp{Verb: api.KVSet, Key: s.path(key), Value: value}
	return s.set(ctx, "put", key, op, func(*store.KV) bool { return false }, holds(value))
}

// CAS writes key only if its ModifyIndex is index (0: only if absent).
func (s *Store) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	op := &api.KVTxnOp{Verb: api.KVCAS, Key: s.path(key), Value: value, Index: index}
	return s.set(ctx, "cas", key, op, func(cur *store.KV) bool {
		if cur == nil {
			return index != 0
		}
		return cur.ModifyIndex != index
	}, holds(value))
}

// holds is the applied test of a write of value (see apply).
func holds(value []byte) func(cur *store.KV) bool {
	return func(cur *store.KV) bool { return cur != nil && bytes.Equal(cur.Value, value) }
}

// set runs a one-operation write transaction and returns the key's new
// ModifyIndex; conflict and applied are as for apply.
func (s *Store) set(ctx context.Context, op, key string, kvop *api.KVTxnOp,
	conflict, applied func(cur *store.KV) bool) (uint64, error) {
	if err := s.checkKey(ctx, op, key); err != nil {
		return 0, err
	}
	results, err := s.apply(ctx, op, key, conflict, applied, api.TxnOps{{KV: kvop}})
	if err != nil {
		return 0, err
	}
	if len(results) != 1 || results[0].KV == nil || results[0].KV.ModifyIndex == 0 {
		return 0, fmt.Errorf("%s %q: consul %q: transaction returned no index", op, key, s.addr)
	}
	return results[0].KV.ModifyIndex, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.checkKey(ctx, "delete", key); err != nil {
		return err
	}
	_, err := s.retry(ctx, s.attempt, func(actx context.Context) error {
		_, err := s.kv.Delete(s.path(key), (&api.WriteOptions{}).WithContext(actx))
		return err
	})
	if err != nil {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// DeleteCAS removes key only if its ModifyIndex is index. Consul's
// delete-cas succeeds on a missing key, so the transaction checks the
// index (which fails on a missing key) before deleting.
func (s *Store) DeleteCAS(ctx context.Context, key string, index uint64) error {
	if err := s.checkKey(ctx, "delete-cas", key); err != nil {
		return err
	}
	path := s.path(key)
	_, err := s.apply(ctx, "delete-cas", key, func(cur *store.KV) bool {
		return cur == nil || cur.ModifyIndex != index
	}, func(cur *store.KV) bool { return cur == nil }, api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: path, Index: index}},
		{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: path}},
	})
	return err
}

// apply runs a transaction on key. If Consul rolls it back, apply reads
// the key: if an earlier attempt whose answer was lost may have been
// applied and applied says the key is in the state the transaction makes,
// that was it and it succeeded; if conflict says the key's state (nil:
// absent) is not what the caller expected, the result wraps
// store.ErrConflict; otherwise the transaction failed for another reason
// (ACL, size) and that is reported.
func (s *Store) apply(ctx context.Context, op, key string, conflict, applied func(cur *store.KV) bool,
	ops api.TxnOps) (api.TxnResults, error) {
	results, ambiguous, rolledBack, err := s.runTxn(ctx, op, key, ops)
	if err != nil || rolledBack == nil {
		return results, err
	}
	kv, err := s.Get(ctx, key)
	var cur *store.KV
	switch {
	case err == nil:
		cur = &kv
	case !errors.Is(err, store.ErrNotFound):
		return nil, errors.Join(s.fail(ctx, op, key, rolledBack), err)
	}
	if ambiguous && applied(cur) {
		var index uint64
		if cur != nil {
			index = cur.ModifyIndex
		}
		return api.TxnResults{{KV: &api.KVPair{Key: s.path(key), ModifyIndex: index}}}, nil
	}
	if !conflict(cur) {
		return nil, s.fail(ctx, op, key, rolledBack)
	}
	if cur == nil {
		return nil, fmt.Errorf("%s %q: key is absent: %w", op, key, store.ErrConflict)
	}
	return nil, fmt.Errorf("%s %q: key is at index %d: %w", op, key, cur.ModifyIndex, store.ErrConflict)
}

// List returns the keys starting with prefix, sorted, and Consul's index
// for the prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	if err := s.check(ctx, "list", prefix); err != nil {
		return nil, 0, err
	}
	kvs, index, _, err := s.list(ctx, "list", prefix, &api.QueryOptions{RequireConsistent: true}, s.attempt)
	return kvs, index, err
}

// list runs one (possibly blocking) List call; meta is Consul's about
// the answer.
func (s *Store) list(ctx context.Context, op, prefix string, q *api.QueryOptions,
	timeout time.Duration) ([]store.KV, uint64, *api.QueryMeta, error) {
	var (
		pairs api.KVPairs
		meta  *api.QueryMeta
	)
	_, err := s.retry(ctx, timeout, func(actx context.Context) (err error) {
		pairs, meta, err = s.kv.List(s.path(prefix), q.WithContext(actx))
		return err
	})
	if err != nil {
		return nil, 0, nil, s.fail(ctx, op, prefix, err)
	}
	if meta.ResultsFilteredByACLs {
		// A partial listing would read as "these keys are gone": callers
		// delete what they think is gone.
		return nil, 0, nil, fmt.Errorf("%s %q: Consul left out keys the token may not read (ACL filtering); give the token read on the whole prefix", op, s.path(prefix))
	}
	kvs := make([]store.KV, 0, len(pairs))
	for _, p := range pairs {
		kvs = append(kvs, s.kvOf(p))
	}
	// Consul's docs: an index of 0 is a bug; 1 keeps blocking queries blocking.
	return kvs, max(meta.LastIndex, 1), meta, nil
}

// kvOf converts a Consul pair to a store.KV.
func (s *Store) kvOf(p *api.KVPair) store.KV {
	value := p.Value
	if value == nil {
		value = []byte{}
	}
	return store.KV{Key: s.key(p.Key), Value: value, ModifyIndex: p.ModifyIndex}
}

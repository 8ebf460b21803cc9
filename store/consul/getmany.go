package consul

import (
	"context"
	"fmt"
	"maps"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
)

// GetMany returns, by key, those of ks that exist: one read-only
// transaction of get operations per store.MaxTxnOps keys, read as
// consistently as Get (the leader confirms it leads). Consul rolls back
// a transaction whose get finds no key, without saying more than its
// error text; such a chunk (a record deleted meanwhile: rare) is read
// again key by key, so an absent key, an ACL denial or any other cause
// is told apart as Get tells it.
func (s *Store) GetMany(ctx context.Context, ks []string) (map[string]store.KV, error) {
	return s.getMany(ctx, ks, true)
}

// GetManyLeader is GetMany in Consul's default mode (store.LeaderGetter):
// the leader answers without the quorum round that confirms it leads.
func (s *Store) GetManyLeader(ctx context.Context, ks []string) (map[string]store.KV, error) {
	return s.getMany(ctx, ks, false)
}

// GetManyStale is GetMany answered by whichever server the agent asks
// (store.StaleGetter, ?stale), not forwarded to the leader. An answer
// from a server without a leader or out of touch with it for more than
// staleMax is dropped and the leader asked (GetManyLeader), as is a
// chunk that server rolled back (a key absent there: deleted, or not
// there yet).
func (s *Store) GetManyStale(ctx context.Context, ks []string) (map[string]store.KV, error) {
	return s.inTxns(ctx, ks, s.staleChunk)
}

// staleChunk is getChunk answered by any server in touch with its
// leader, else by the leader.
func (s *Store) staleChunk(ctx context.Context, ks []string) (map[string]store.KV, error) {
	txn, err := s.getOps(ctx, ks)
	if err != nil {
		return nil, err
	}
	ok, resp, meta, err := s.readTxnAs(ctx, "get many stale", store.KeysName(ks), txn, api.QueryOptions{AllowStale: true})
	if err != nil {
		return nil, err
	}
	if !ok || outOfTouch(meta) {
		s.staleGetFallbacks.Add(1)
		return s.getChunk(ctx, ks, false)
	}
	return s.gotAll(resp, ks)
}

// StaleGetFallbacks is how many chunks GetManyStale read again from the
// leader (store.StaleGetFallbacks).
func (s *Store) StaleGetFallbacks() uint64 { return s.staleGetFallbacks.Load() }

// getMany is GetMany, read consistently or in default mode.
func (s *Store) getMany(ctx context.Context, ks []string, consistent bool) (map[string]store.KV, error) {
	return s.inTxns(ctx, ks, func(ctx context.Context, ks []string) (map[string]store.KV, error) {
		return s.getChunk(ctx, ks, consistent)
	})
}

// inTxns reads ks by chunk, store.MaxTxnOps keys at a time.
func (s *Store) inTxns(ctx context.Context, ks []string, chunk func(context.Context, []string) (map[string]store.KV, error)) (map[string]store.KV, error) {
	out := make(map[string]store.KV, len(ks))
	for len(ks) > 0 {
		n := min(len(ks), store.MaxTxnOps)
		got, err := chunk(ctx, ks[:n])
		if err != nil {
			return nil, err
		}
		maps.Copy(out, got)
		ks = ks[n:]
	}
	return out, nil
}

// getChunk reads ks (at most store.MaxTxnOps keys) in one transaction,
// or key by key (consistently, as Get) when Consul rolled it back.
func (s *Store) getChunk(ctx context.Context, ks []string, consistent bool) (map[string]store.KV, error) {
	txn, err := s.getOps(ctx, ks)
	if err != nil {
		return nil, err
	}
	ok, resp, err := s.readTxn(ctx, "get many", store.KeysName(ks), txn, consistent)
	if err != nil {
		return nil, err
	}
	if !ok {
		return store.GetEach(ctx, s, ks)
	}
	return s.gotAll(resp, ks)
}

// getOps is a transaction's get operations of ks.
func (s *Store) getOps(ctx context.Context, ks []string) (api.TxnOps, error) {
	txn := make(api.TxnOps, len(ks))
	for i, k := range ks {
		if err := s.checkKey(ctx, "get many", k); err != nil {
			return nil, err
		}
		txn[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGet, Key: s.path(k)}}
	}
	return txn, nil
}

// gotAll is the records of a get transaction of ks that Consul applied:
// one for each key.
func (s *Store) gotAll(resp *api.TxnResponse, ks []string) (map[string]store.KV, error) {
	out := make(map[string]store.KV, len(ks))
	for _, r := range resp.Results {
		if r.KV == nil {
			continue
		}
		kv := s.kvOf(r.KV)
		out[kv.Key] = kv
	}
	if len(out) != len(distinct(ks)) {
		return nil, fmt.Errorf("get many %q: consul %q answered %d of %d keys", store.KeysName(ks), s.addr, len(out), len(ks))
	}
	return out, nil
}

// distinct is the set of ks.
func distinct(ks []string) map[string]bool {
	set := make(map[string]bool, len(ks))
	for _, k := range ks {
		set[k] = true
	}
	return set
}

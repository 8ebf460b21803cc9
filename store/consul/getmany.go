package consul

import (
	"context"
	"fmt"

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

// getMany is GetMany, read consistently or in default mode.
func (s *Store) getMany(ctx context.Context, ks []string, consistent bool) (map[string]store.KV, error) {
	out := make(map[string]store.KV, len(ks))
	for len(ks) > 0 {
		n := min(len(ks), store.MaxTxnOps)
		got, err := s.getChunk(ctx, ks[:n], consistent)
		if err != nil {
			return nil, err
		}
		for k, kv := range got {
			out[k] = kv
		}
		ks = ks[n:]
	}
	return out, nil
}

// getChunk reads ks (at most store.MaxTxnOps keys) in one transaction,
// or key by key (consistently, as Get) when Consul rolled it back.
func (s *Store) getChunk(ctx context.Context, ks []string, consistent bool) (map[string]store.KV, error) {
	txn := make(api.TxnOps, len(ks))
	for i, k := range ks {
		if err := s.checkKey(ctx, "get many", k); err != nil {
			return nil, err
		}
		txn[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGet, Key: s.path(k)}}
	}
	subject := store.KeysName(ks)
	ok, resp, err := s.readTxn(ctx, "get many", subject, txn, consistent)
	if err != nil {
		return nil, err
	}
	if !ok {
		return store.GetEach(ctx, s, ks)
	}
	out := make(map[string]store.KV, len(ks))
	for _, r := range resp.Results {
		if r.KV == nil {
			continue
		}
		kv := s.kvOf(r.KV)
		out[kv.Key] = kv
	}
	if len(out) != len(distinct(ks)) {
		return nil, fmt.Errorf("get many %q: consul %q answered %d of %d keys", subject, s.addr, len(out), len(ks))
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

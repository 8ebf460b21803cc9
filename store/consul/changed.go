package consul

import (
	"context"
	"sort"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
)

// Changed returns the keys of known whose ModifyIndex is not the given
// one (absent keys included): one read-only transaction of check-index
// operations per store.MaxTxnOps keys. Consul answers such a transaction
// from its state without a Raft entry, with the keys' metadata and no
// values; a key that fails its check is named in the answer's errors by
// its operation's position. An error without a position (an ACL denial,
// say) counts every key of its transaction as changed: the caller reads
// them and meets the cause there.
func (s *Store) Changed(ctx context.Context, known map[string]uint64) ([]string, error) {
	ks := make([]string, 0, len(known))
	for k := range known {
		if err := s.checkKey(ctx, "check indexes", k); err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var out []string
	for len(ks) > 0 {
		n := min(len(ks), store.MaxTxnOps)
		changed, err := s.changedChunk(ctx, ks[:n], known)
		if err != nil {
			return nil, err
		}
		out, ks = append(out, changed...), ks[n:]
	}
	return out, nil
}

// changedChunk checks the indexes of ks (at most store.MaxTxnOps keys).
func (s *Store) changedChunk(ctx context.Context, ks []string, known map[string]uint64) ([]string, error) {
	txn := make(api.TxnOps, len(ks))
	for i, k := range ks {
		txn[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: s.path(k), Index: known[k]}}
	}
	ok, resp, err := s.readTxn(ctx, "check indexes", store.KeysName(ks), txn, false)
	if err != nil {
		return nil, err
	}
	if ok {
		return nil, nil
	}
	seen := map[int]bool{}
	for _, e := range resp.Errors {
		if e.OpIndex < 0 || e.OpIndex >= len(ks) {
			return ks, nil
		}
		seen[e.OpIndex] = true
	}
	if len(seen) == 0 {
		return ks, nil
	}
	out := make([]string, 0, len(seen))
	for i, k := range ks {
		if seen[i] {
			out = append(out, k)
		}
	}
	return out, nil
}

// readTxn runs a read-only transaction (answered without a Raft entry),
// retried as every call is; consistent has the leader confirm it leads,
// as Get does. ok false is a transaction Consul rolled back, its errors
// in resp.
func (s *Store) readTxn(ctx context.Context, op, subject string, txn api.TxnOps, consistent bool) (ok bool, resp *api.TxnResponse, err error) {
	ok, resp, _, err = s.readTxnAs(ctx, op, subject, txn, api.QueryOptions{RequireConsistent: consistent})
	return ok, resp, err
}

// readTxnAs is readTxn in the consistency mode of q, with the answer's
// metadata (which server state answered: KnownLeader, LastContact).
func (s *Store) readTxnAs(ctx context.Context, op, subject string, txn api.TxnOps, q api.QueryOptions) (ok bool, resp *api.TxnResponse, meta *api.QueryMeta, err error) {
	_, err = s.retry(ctx, s.attempt, func(actx context.Context) (err error) {
		ok, resp, meta, err = s.txn.Txn(txn, q.WithContext(actx))
		return err
	})
	if err != nil {
		return false, nil, nil, s.fail(ctx, op, subject, err)
	}
	return ok, resp, meta, nil
}

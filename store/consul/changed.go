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
	subject := store.KeysName(ks)
	cctx, done := s.callCtx(ctx, callTimeout)
	defer done()
	var (
		ok   bool
		resp *api.TxnResponse
	)
	_, err := s.retry(cctx, func() (err error) {
		ok, resp, _, err = s.txn.Txn(txn, (&api.QueryOptions{}).WithContext(cctx))
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "check indexes", subject, err)
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

package consul

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
)

// roundOps is the most operations ReadRound puts in one transaction:
// Consul's limit since 1.14 (128). An older Consul answers 413 to more
// than 64, and the store falls back to store.MaxTxnOps for good.
const roundOps = 128

// ReadRound lists prefixes and checks the indexes of known in one
// read-only transaction (store.RoundReader) of get-tree and check-index
// operations, per roundOps operations, read as consistently as List (the
// leader confirms it leads). When a check fails Consul rolls the
// transaction back and answers only the failed checks, by position: the
// listings of that transaction are then left out, and the caller lists
// them itself. Check results come last in an answer, one per check, so
// what comes before them are the listings, told apart by prefix.
func (s *Store) ReadRound(ctx context.Context, prefixes []string, known map[string]uint64) (map[string][]store.KV, []string, error) {
	if err := store.NoNesting(prefixes); err != nil {
		return nil, nil, err
	}
	for _, p := range prefixes {
		if err := s.checkKey(ctx, "read round", p); err != nil {
			return nil, nil, err
		}
	}
	ks := make([]string, 0, len(known))
	for k := range known {
		if err := s.checkKey(ctx, "read round", k); err != nil {
			return nil, nil, err
		}
		ks = append(ks, k)
	}
	sort.Strings(ks)
	lists := map[string][]store.KV{}
	var changed []string
	err := s.inChunks(prefixes, ks, func(ps, ks []string) error {
		got, ch, err := s.roundChunk(ctx, ps, ks, known)
		if err != nil {
			return err
		}
		for p, kvs := range got {
			lists[p] = kvs
		}
		changed = append(changed, ch...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return lists, changed, nil
}

// inChunks runs fn on ks in as many transactions as this Consul needs,
// prefixes ps with the first; Consul's 413 to the first chunk of more
// operations than it takes (before 1.14) starts again in smaller chunks.
func (s *Store) inChunks(ps, ks []string, fn func(ps, ks []string) error) error {
	first := true
	for first || len(ks) > 0 {
		n := s.roundOps()
		var cps []string
		if first {
			cps, n = ps, max(n-len(ps), 1)
		}
		n = min(n, len(ks))
		err := fn(cps, ks[:n])
		if errors.Is(err, errTooManyOps) && s.smallTxn.CompareAndSwap(false, true) {
			continue // again, in chunks an older Consul takes
		}
		if err != nil {
			return err
		}
		ks, first = ks[n:], false
	}
	return nil
}

// errTooManyOps is Consul's 413 to a transaction of more than it takes.
var errTooManyOps = errors.New("too many operations in one transaction")

// chunkTxn runs one chunk of inChunks as op: a consistent read-only
// transaction that lists ps, then runs keyOp's operation on each of ks,
// results in that order; subject names them in errors. Consul's 413 to it
// is errTooManyOps.
func (s *Store) chunkTxn(ctx context.Context, op string, ps, ks []string, keyOp func(k string) *api.KVTxnOp) (ok bool, resp *api.TxnResponse, subject string, err error) {
	txn := make(api.TxnOps, 0, len(ps)+len(ks))
	for _, p := range ps {
		txn = append(txn, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: s.path(p)}})
	}
	for _, k := range ks {
		txn = append(txn, &api.TxnOp{KV: keyOp(k)})
	}
	subject = strings.Join(ps, ",") + store.KeysName(ks)
	ok, resp, err = s.readTxn(ctx, op, subject, txn, true)
	if isTooManyOps(err) {
		return false, nil, subject, errTooManyOps
	}
	return ok, resp, subject, err
}

// isTooManyOps tells Consul's 413 to a transaction of more operations
// than it takes. The api client's Txn answers it as a plain error with
// Consul's reason only (no StatusError), like the ACL refusals retryable
// reads.
func isTooManyOps(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Transaction contains too many operations")
}

// roundOps is the operations per ReadRound transaction this Consul takes.
func (s *Store) roundOps() int {
	if s.smallTxn.Load() {
		return store.MaxTxnOps
	}
	return roundOps
}

// roundChunk lists ps and checks ks in one transaction.
func (s *Store) roundChunk(ctx context.Context, ps, ks []string, known map[string]uint64) (map[string][]store.KV, []string, error) {
	ok, resp, _, err := s.chunkTxn(ctx, "read round", ps, ks, func(k string) *api.KVTxnOp {
		return &api.KVTxnOp{Verb: api.KVCheckIndex, Key: s.path(k), Index: known[k]}
	})
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, failedChecks(resp, len(ps), ks), nil
	}
	lists := make(map[string][]store.KV, len(ps))
	for _, p := range ps {
		lists[p] = []store.KV{}
	}
	for _, r := range resp.Results[:max(len(resp.Results)-len(ks), 0)] {
		if r.KV == nil {
			continue
		}
		kv := s.kvOf(r.KV)
		for _, p := range ps {
			if strings.HasPrefix(kv.Key, p) {
				lists[p] = append(lists[p], kv)
			}
		}
	}
	for _, kvs := range lists {
		sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	}
	return lists, nil, nil
}

// failedChecks names the keys of ks (whose checks follow skip listings)
// that a rolled-back transaction's errors name; an error without a
// position counts every key as changed, as Changed does.
func failedChecks(resp *api.TxnResponse, skip int, ks []string) []string {
	var out []string
	for _, e := range resp.Errors {
		i := e.OpIndex - skip
		if i < 0 || i >= len(ks) {
			return ks
		}
		out = append(out, ks[i])
	}
	if len(out) == 0 {
		return ks
	}
	return out
}

var _ store.RoundReader = (*Store)(nil)

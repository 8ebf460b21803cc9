package consul

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
)

// Txn applies ops as one Consul transaction (/v1/txn): one request, one
// Raft entry. When Consul rolls it back, Txn reads the keys: after a lost
// answer (ambiguous) keys already holding what ops write are the earlier
// attempt's success; a VerbCAS whose condition fails is a conflict;
// anything else (ACL, size) is reported as Consul's errors.
func (s *Store) Txn(ctx context.Context, ops []store.Op) error {
	if err := store.CheckOps(ops); err != nil {
		return err
	}
	txn := make(api.TxnOps, 0, len(ops))
	for _, op := range ops {
		if err := s.checkKey(ctx, "txn", op.Key); err != nil {
			return err
		}
		kv := &api.KVTxnOp{Key: s.path(op.Key), Value: op.Value}
		switch op.Verb {
		case store.VerbCAS:
			kv.Verb, kv.Index = api.KVCAS, op.Index
		case store.VerbPut:
			kv.Verb = api.KVSet
		case store.VerbDelete:
			kv.Verb, kv.Value = api.KVDelete, nil
		}
		txn = append(txn, &api.TxnOp{KV: kv})
	}
	name := store.TxnKey(ops)
	_, ambiguous, rolledBack, err := s.runTxn(ctx, "txn", name, txn)
	if err != nil || rolledBack == nil {
		return err
	}
	return s.rolledBack(ctx, ops, ambiguous, rolledBack)
}

// runTxn runs one Consul transaction, retried as every call is. A
// transaction Consul rolled back returns rolledBack naming its errors;
// ambiguous tells that an earlier attempt may have been applied.
func (s *Store) runTxn(ctx context.Context, op, subject string, txn api.TxnOps) (results api.TxnResults, ambiguous bool, rolledBack, err error) {
	var (
		ok   bool
		resp *api.TxnResponse
	)
	ambiguous, err = s.retry(ctx, s.attempt, func(actx context.Context) (err error) {
		ok, resp, _, err = s.txn.Txn(txn, (&api.QueryOptions{}).WithContext(actx))
		return err
	})
	if err != nil {
		return nil, ambiguous, nil, s.fail(ctx, op, subject, err)
	}
	if ok {
		return resp.Results, ambiguous, nil, nil
	}
	var why []string
	for _, e := range resp.Errors {
		why = append(why, e.What)
	}
	return nil, ambiguous, fmt.Errorf("transaction rolled back: %s", strings.Join(why, "; ")), nil
}

// rolledBack explains a rolled-back transaction from the keys' state.
func (s *Store) rolledBack(ctx context.Context, ops []store.Op, ambiguous bool, why error) error {
	name := store.TxnKey(ops)
	cur := make([]*store.KV, len(ops))
	for i, op := range ops {
		kv, err := s.Get(ctx, op.Key)
		switch {
		case err == nil:
			cur[i] = &kv
		case !errors.Is(err, store.ErrNotFound):
			return errors.Join(s.fail(ctx, "txn", name, why), err)
		}
	}
	if ambiguous && applied(ops, cur) {
		return nil
	}
	for i, op := range ops {
		if op.Verb != store.VerbCAS {
			continue
		}
		switch c := cur[i]; {
		case c == nil && op.Index != 0:
			return fmt.Errorf("txn %q: key %q is absent: %w", name, op.Key, store.ErrConflict)
		case c != nil && c.ModifyIndex != op.Index:
			return fmt.Errorf("txn %q: key %q is at index %d: %w", name, op.Key, c.ModifyIndex, store.ErrConflict)
		}
	}
	return s.fail(ctx, "txn", name, why)
}

// applied tells whether the keys' state cur is what ops make.
func applied(ops []store.Op, cur []*store.KV) bool {
	for i, op := range ops {
		if op.Verb == store.VerbDelete {
			if cur[i] != nil {
				return false
			}
			continue
		}
		if cur[i] == nil || !bytes.Equal(cur[i].Value, op.Value) {
			return false
		}
	}
	return true
}

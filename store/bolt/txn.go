package bolt

import (
	"context"
	"fmt"

	"github.com/vxnet/vxnet/store"
	bbolt "go.etcd.io/bbolt"
)

// Txn applies ops in one bbolt transaction, all at one new index.
func (s *Store) Txn(ctx context.Context, ops []store.Op) error {
	if err := store.CheckOps(ops); err != nil {
		return err
	}
	for _, op := range ops {
		if err := s.checkKey(ctx, "txn", op.Key); err != nil {
			return err
		}
	}
	name := store.TxnKey(ops)
	var (
		next    uint64
		written []string
	)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		kvs, meta := tx.Bucket([]byte(bucketKV)), tx.Bucket([]byte(bucketMeta))
		index, err := readIndex(meta)
		if err != nil {
			return err
		}
		next = index + 1
		for _, op := range ops {
			if err := s.txnOp(kvs, op, next); err != nil {
				return err
			}
			written = append(written, op.Key)
		}
		return meta.Put([]byte(keyIndex), encodeIndex(next))
	})
	if err != nil {
		return fmt.Errorf("txn %q: %w", name, err)
	}
	for _, k := range written {
		s.record(next, k)
	}
	return nil
}

// txnOp applies one operation inside a bbolt transaction at index next.
func (s *Store) txnOp(kvs *bbolt.Bucket, op store.Op, next uint64) error {
	var cur *store.KV
	if raw := kvs.Get([]byte(op.Key)); raw != nil {
		kv, err := decode(op.Key, raw)
		if err != nil {
			return err
		}
		cur = &kv
	}
	switch op.Verb {
	case store.VerbDelete:
		return kvs.Delete([]byte(op.Key))
	case store.VerbCAS:
		if err := compare(cur, op.Index); err != nil {
			return fmt.Errorf("key %q: %w", op.Key, err)
		}
	}
	return kvs.Put([]byte(op.Key), encode(next, op.Value))
}

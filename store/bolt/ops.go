package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/vxnet/vxnet/store"
	bbolt "go.etcd.io/bbolt"
)

var _ store.Store = (*Store)(nil)

// Get returns key, or an error wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	if err := s.checkKey(ctx, "get", key); err != nil {
		return store.KV{}, err
	}
	var (
		kv    store.KV
		found bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket([]byte(bucketKV)).Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		var err error
		kv, err = decode(key, raw)
		return err
	})
	if err != nil {
		return store.KV{}, fmt.Errorf("get %q: %w", key, err)
	}
	if !found {
		return store.KV{}, fmt.Errorf("get %q: %w", key, store.ErrNotFound)
	}
	return kv, nil
}

// Put writes key unconditionally.
func (s *Store) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return s.write(ctx, "put", key, func(_ *store.KV, next uint64) ([]byte, error) {
		return encode(next, value), nil
	})
}

// CAS writes key only if its ModifyIndex is index (0: only if absent).
func (s *Store) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	return s.write(ctx, "cas", key, func(cur *store.KV, next uint64) ([]byte, error) {
		if err := compare(cur, index); err != nil {
			return nil, err
		}
		return encode(next, value), nil
	})
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.write(ctx, "delete", key, func(*store.KV, uint64) ([]byte, error) {
		return nil, nil
	})
	return err
}

// DeleteCAS removes key only if its ModifyIndex is index.
func (s *Store) DeleteCAS(ctx context.Context, key string, index uint64) error {
	_, err := s.write(ctx, "delete-cas", key, func(cur *store.KV, _ uint64) ([]byte, error) {
		if cur == nil {
			return nil, fmt.Errorf("key is absent, expected index %d: %w", index, store.ErrConflict)
		}
		return nil, compare(cur, index)
	})
	return err
}

// compare fails with store.ErrConflict unless cur is at index (absent for 0).
func compare(cur *store.KV, index uint64) error {
	switch {
	case cur == nil && index != 0:
		return fmt.Errorf("key is absent, expected index %d: %w", index, store.ErrConflict)
	case cur != nil && cur.ModifyIndex != index:
		return fmt.Errorf("key is at index %d, expected %d: %w", cur.ModifyIndex, index, store.ErrConflict)
	}
	return nil
}

// write runs one write transaction on key. decide gets the current entry
// (nil if absent) and the index the write would get, and returns the new
// encoded entry, or nil to delete the key. Deleting an absent key changes
// nothing and returns index 0.
func (s *Store) write(ctx context.Context, op, key string,
	decide func(cur *store.KV, next uint64) ([]byte, error)) (uint64, error) {
	if err := s.checkKey(ctx, op, key); err != nil {
		return 0, err
	}
	var next uint64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		kvs, meta := tx.Bucket([]byte(bucketKV)), tx.Bucket([]byte(bucketMeta))
		index, err := readIndex(meta)
		if err != nil {
			return err
		}
		var cur *store.KV
		if raw := kvs.Get([]byte(key)); raw != nil {
			kv, err := decode(key, raw)
			if err != nil {
				return err
			}
			cur = &kv
		}
		entry, err := decide(cur, index+1)
		switch {
		case err != nil:
			return err
		case entry == nil && cur == nil:
			return nil
		case entry == nil:
			err = kvs.Delete([]byte(key))
		default:
			err = kvs.Put([]byte(key), entry)
		}
		if err != nil {
			return err
		}
		next = index + 1
		return meta.Put([]byte(keyIndex), encodeIndex(next))
	})
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", op, key, err)
	}
	if next != 0 {
		s.record(next, key)
	}
	return next, nil
}

// List returns the keys starting with prefix, sorted, and the global index.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	if err := s.check(ctx, "list", prefix); err != nil {
		return nil, 0, err
	}
	return s.list("list", prefix)
}

// list reads the listing and the index in one transaction.
func (s *Store) list(op, prefix string) ([]store.KV, uint64, error) {
	var (
		kvs   []store.KV
		index uint64
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		p := []byte(prefix)
		c := tx.Bucket([]byte(bucketKV)).Cursor()
		for k, raw := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = c.Next() {
			kv, err := decode(string(k), raw)
			if err != nil {
				return err
			}
			kvs = append(kvs, kv)
		}
		var err error
		index, err = readIndex(tx.Bucket([]byte(bucketMeta)))
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("%s %q: %w", op, prefix, err)
	}
	return kvs, index, nil
}

// encode is the stored form of an entry: index, then value.
func encode(index uint64, value []byte) []byte {
	return append(encodeIndex(index), value...)
}

// decode copies a stored entry out of bbolt's memory.
func decode(key string, raw []byte) (store.KV, error) {
	if len(raw) < 8 {
		return store.KV{}, fmt.Errorf("corrupt entry %q: %d bytes", key, len(raw))
	}
	return store.KV{
		Key:         key,
		Value:       bytes.Clone(raw[8:]),
		ModifyIndex: binary.BigEndian.Uint64(raw[:8]),
	}, nil
}

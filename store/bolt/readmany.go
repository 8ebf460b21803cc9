package bolt

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/vxnet/vxnet/store"
)

// ReadMany lists prefixes and reads ks in one view (store.ManyReader).
func (s *Store) ReadMany(ctx context.Context, prefixes, ks []string) (map[string][]store.KV, map[string]store.KV, error) {
	if err := s.check(ctx, "read many", fmt.Sprintf("%d prefixes, %d keys", len(prefixes), len(ks))); err != nil {
		return nil, nil, err
	}
	if err := store.NoNesting(prefixes); err != nil {
		return nil, nil, err
	}
	for _, k := range ks {
		if err := s.checkKey(ctx, "read many", k); err != nil {
			return nil, nil, err
		}
	}
	lists := make(map[string][]store.KV, len(prefixes))
	got := make(map[string]store.KV, len(ks))
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketKV))
		if err := listIn(b, prefixes, lists); err != nil {
			return err
		}
		return getIn(b, ks, got)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read %d prefixes and %d keys: %w", len(prefixes), len(ks), err)
	}
	return lists, got, nil
}

var _ store.ManyReader = (*Store)(nil)

// listIn lists each of prefixes in b into lists (an empty, not nil, slice
// for a prefix with no keys).
func listIn(b *bbolt.Bucket, prefixes []string, lists map[string][]store.KV) error {
	for _, prefix := range prefixes {
		p := []byte(prefix)
		kvs := []store.KV{}
		c := b.Cursor()
		for k, raw := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = c.Next() {
			kv, err := decode(string(k), raw)
			if err != nil {
				return err
			}
			kvs = append(kvs, kv)
		}
		lists[prefix] = kvs
	}
	return nil
}

// getIn reads those of ks that exist in b into got.
func getIn(b *bbolt.Bucket, ks []string, got map[string]store.KV) error {
	for _, k := range ks {
		raw := b.Get([]byte(k))
		if raw == nil {
			continue
		}
		kv, err := decode(k, raw)
		if err != nil {
			return err
		}
		got[k] = kv
	}
	return nil
}

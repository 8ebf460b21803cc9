package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/vxnet/vxnet/store"
)

// GetMany returns, by key, those of ks that exist, read in one bbolt
// transaction.
func (s *Store) GetMany(ctx context.Context, ks []string) (map[string]store.KV, error) {
	for _, k := range ks {
		if err := s.checkKey(ctx, "get many", k); err != nil {
			return nil, err
		}
	}
	out := make(map[string]store.KV, len(ks))
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketKV))
		return getIn(b, ks, out)
	})
	if err != nil {
		return nil, fmt.Errorf("get %d keys: %w", len(ks), err)
	}
	return out, nil
}

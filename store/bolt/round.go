package bolt

import (
	"context"
	"fmt"
	"sort"

	"go.etcd.io/bbolt"

	"github.com/vxnet/vxnet/store"
)

// ReadRound lists prefixes and checks the indexes of known in one view
// (store.RoundReader): what Consul answers in one read-only transaction.
func (s *Store) ReadRound(ctx context.Context, prefixes []string, known map[string]uint64) (map[string][]store.KV, []string, error) {
	if err := s.check(ctx, "read round", fmt.Sprintf("%d prefixes, %d keys", len(prefixes), len(known))); err != nil {
		return nil, nil, err
	}
	if err := store.NoNesting(prefixes); err != nil {
		return nil, nil, err
	}
	lists := make(map[string][]store.KV, len(prefixes))
	var changed []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketKV))
		if err := listIn(b, prefixes, lists); err != nil {
			return err
		}
		var err error
		changed, err = changedIn(b, known)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read round of %d prefixes and %d keys: %w", len(prefixes), len(known), err)
	}
	sort.Strings(changed)
	return lists, changed, nil
}

// changedIn returns the keys of known in b written or deleted since the
// given indexes.
func changedIn(b *bbolt.Bucket, known map[string]uint64) ([]string, error) {
	var out []string
	for k, idx := range known {
		raw := b.Get([]byte(k))
		if raw == nil {
			out = append(out, k)
			continue
		}
		kv, err := decode(k, raw)
		if err != nil {
			return nil, err
		}
		if kv.ModifyIndex != idx {
			out = append(out, k)
		}
	}
	return out, nil
}

var _ store.RoundReader = (*Store)(nil)

package bolt

import (
	"context"
	"fmt"
	"sort"

	"go.etcd.io/bbolt"
)

// Changed returns the keys of known whose ModifyIndex is not the given
// one (absent keys included), read in one bbolt transaction.
func (s *Store) Changed(ctx context.Context, known map[string]uint64) ([]string, error) {
	if err := s.check(ctx, "check indexes", fmt.Sprintf("%d keys", len(known))); err != nil {
		return nil, err
	}
	var out []string
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		out, err = changedIn(tx.Bucket([]byte(bucketKV)), known)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("check indexes of %d keys: %w", len(known), err)
	}
	sort.Strings(out)
	return out, nil
}

package bolt

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"
)

// ListKeys returns the keys under prefix, sorted, without decoding their
// values.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := s.check(ctx, "list keys", prefix); err != nil {
		return nil, err
	}
	var out []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		p := []byte(prefix)
		c := tx.Bucket([]byte(bucketKV)).Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			out = append(out, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keys %q: %w", prefix, err)
	}
	return out, nil
}

package consul

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/consul/api"
)

// ListKeys returns the keys under prefix, sorted, without their values
// (Consul's ?keys listing).
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := s.check(ctx, "list keys", prefix); err != nil {
		return nil, err
	}
	ks, _, err := s.keys(ctx, "list keys", prefix, &api.QueryOptions{RequireConsistent: true}, s.attempt)
	return ks, err
}

// WatchKeys is Watch answering with the keys alone (a blocking ?keys
// query): it blocks until Consul's index for prefix moves away from index
// and returns the keys under prefix, sorted, and that index.
func (s *Store) WatchKeys(ctx context.Context, prefix string, index uint64) ([]string, uint64, error) {
	for {
		if err := s.check(ctx, "watch keys", prefix); err != nil {
			return nil, 0, err
		}
		// Default consistency, as Watch (watch.go).
		q := &api.QueryOptions{WaitIndex: index, WaitTime: watchWait}
		ks, next, err := s.keys(ctx, "watch keys", prefix, q, watchWait+watchWait/16+s.attempt)
		if err != nil || next != index {
			return ks, next, err
		}
	}
}

// keys runs one (possibly blocking) ?keys listing.
func (s *Store) keys(ctx context.Context, op, prefix string, q *api.QueryOptions, timeout time.Duration) ([]string, uint64, error) {
	var (
		paths []string
		meta  *api.QueryMeta
	)
	_, err := s.retry(ctx, timeout, func(actx context.Context) (err error) {
		paths, meta, err = s.kv.Keys(s.path(prefix), "", q.WithContext(actx))
		return err
	})
	if err != nil {
		return nil, 0, s.fail(ctx, op, prefix, err)
	}
	if meta.ResultsFilteredByACLs {
		return nil, 0, fmt.Errorf("%s %q: Consul left out keys the token may not read (ACL filtering); give the token read on the whole prefix", op, s.path(prefix))
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = s.key(p)
	}
	sort.Strings(out)
	// As list: an index of 0 is a bug; 1 keeps blocking queries blocking.
	return out, max(meta.LastIndex, 1), nil
}

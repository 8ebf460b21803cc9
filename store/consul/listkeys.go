package consul

import (
	"context"
	"fmt"
	"sort"

	"github.com/hashicorp/consul/api"
)

// ListKeys returns the keys under prefix, sorted, without their values
// (Consul's ?keys listing).
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := s.check(ctx, "list keys", prefix); err != nil {
		return nil, err
	}
	cctx, done := s.callCtx(ctx, callTimeout)
	defer done()
	var (
		paths []string
		meta  *api.QueryMeta
	)
	_, err := s.retry(cctx, func() (err error) {
		paths, meta, err = s.kv.Keys(s.path(prefix), "", (&api.QueryOptions{RequireConsistent: true}).WithContext(cctx))
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "list keys", prefix, err)
	}
	if meta.ResultsFilteredByACLs {
		return nil, fmt.Errorf("list keys %q: Consul left out keys the token may not read (ACL filtering); give the token read on the whole prefix", s.path(prefix))
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = s.key(p)
	}
	sort.Strings(out)
	return out, nil
}

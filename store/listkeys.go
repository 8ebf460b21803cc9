package store

import "context"

// KeyLister is implemented by stores that list the keys under a prefix
// without their values (both backends do; ListKeys falls back to List for
// wrappers that do not).
//
// Why: reconcile asks every few seconds, for every network of the host,
// which endpoint records exist; with List every host read every record of
// every network it is on each round, the largest idle cost of a
// simulated 50-host cluster (87 of 143 KB/s per host, docs/scaling.md).
type KeyLister interface {
	// ListKeys returns the keys under prefix, sorted, as List would.
	ListKeys(ctx context.Context, prefix string) ([]string, error)
}

// ListKeys returns the keys under prefix, sorted: without reading their
// values where s is a KeyLister, else from List.
func ListKeys(ctx context.Context, s Store, prefix string) ([]string, error) {
	if kl, ok := s.(KeyLister); ok {
		return kl.ListKeys(ctx, prefix)
	}
	kvs, _, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out, nil
}

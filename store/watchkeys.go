package store

import "context"

// KeyWatcher is implemented by stores that block on a prefix and answer
// with its keys alone, without their values (Consul's blocking ?keys
// query; WatchKeys falls back to Watch for stores and wrappers without
// one).
//
// Why: a host follows the change logs of all its networks with one
// blocking query on their prefix (driver/logwatch.go) instead of one per
// network, each of which every endpoint add woke. The query only has to
// say that some log moved; which ones, an index check tells
// (IndexChecker), so its answer need not carry every log of the cluster.
type KeyWatcher interface {
	// WatchKeys blocks as Watch does and returns the keys under prefix,
	// sorted, and the index as Watch does.
	WatchKeys(ctx context.Context, prefix string, index uint64) ([]string, uint64, error)
}

// WatchKeys is Watch answering with the keys alone: without their values
// where s is a KeyWatcher, else from Watch.
func WatchKeys(ctx context.Context, s Store, prefix string, index uint64) ([]string, uint64, error) {
	if kw, ok := s.(KeyWatcher); ok {
		return kw.WatchKeys(ctx, prefix, index)
	}
	kvs, next, err := s.Watch(ctx, prefix, index)
	if err != nil {
		return nil, 0, err
	}
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out, next, nil
}

package store

import "context"

// ManyReader is implemented by stores that list prefixes and read keys in
// one request (both backends do: a read-only Consul transaction, one
// bbolt view). ReadMany reads them through it, or a List per prefix and
// one GetMany where a store cannot.
//
// Why: a peer watcher's start (and every full listing) read the network's
// change log and listed its endpoint records in two requests, 2.7 times
// per join in the create phase (change 23); a reconcile round whose index
// checks found records moved listed the host's records again and read the
// moved ones in separate requests, all the time while networks are
// created (change 24; docs/scaling.md).
type ManyReader interface {
	// ReadMany lists each of prefixes as List does and reads ks as
	// GetMany does (absent keys left out), in one read: the answers are
	// of one moment. Prefixes must not nest.
	ReadMany(ctx context.Context, prefixes, ks []string) (lists map[string][]KV, got map[string]KV, err error)
}

// ReadMany is s's ReadMany where s is a ManyReader, else ReadManyEach.
func ReadMany(ctx context.Context, s Store, prefixes, ks []string) (map[string][]KV, map[string]KV, error) {
	if mr, ok := s.(ManyReader); ok {
		return mr.ReadMany(ctx, prefixes, ks)
	}
	return ReadManyEach(ctx, s, prefixes, ks)
}

// ReadManyEach is ReadMany from the calls it stands for, for stores that
// have no one request for them: a List per prefix and one GetMany (not
// of one moment).
func ReadManyEach(ctx context.Context, s Store, prefixes, ks []string) (map[string][]KV, map[string]KV, error) {
	lists, err := listEach(ctx, s, prefixes)
	if err != nil {
		return nil, nil, err
	}
	for p, kvs := range lists {
		if kvs == nil {
			lists[p] = []KV{}
		}
	}
	got := map[string]KV{}
	if len(ks) > 0 {
		if got, err = GetMany(ctx, s, ks); err != nil {
			return nil, nil, err
		}
	}
	return lists, got, nil
}

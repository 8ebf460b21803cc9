package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Cache keeps JSON records read from a store, decoded, with their
// ModifyIndex, and reads a record again only when its index moved: one
// IndexChecker request checks every cached key asked for, and only the
// keys written or deleted since are read. Against a store that is no
// IndexChecker it reads everything, as without the cache. Returned values
// are shared between callers: read them, do not change them.
//
// Why: reconcile, every --reconcile-interval on every host, reads records
// that grow with the hosts and rarely change (each network's record and
// pool, and every network record and pool of the cluster to find creates
// and releases killed half-way). Read in full each round they were, at
// 100 hosts, hundreds of kilobytes per host every 5 s, growing over the
// cluster with hosts² × networks; the simulated 100-host cluster timed
// out in its network creates (docs/scaling.md).
type Cache[T any] struct {
	mu sync.Mutex
	m  map[string]Cached[T]
}

// Cached is one record of a Cache.
type Cached[T any] struct {
	Key         string
	ModifyIndex uint64
	Value       *T
}

// Get returns the record of key, read again only if it changed since it
// was cached; an absent key wraps ErrNotFound and a record that does not
// decode is an error naming the key.
func (c *Cache[T]) Get(ctx context.Context, s Store, key string) (Cached[T], error) {
	got, err := c.GetAll(ctx, s, []string{key})
	if err != nil {
		return Cached[T]{}, err
	}
	cur, ok := got[key]
	if !ok {
		return Cached[T]{}, fmt.Errorf("get %q: %w", key, ErrNotFound)
	}
	return cur, nil
}

// GetAll returns the records of ks that exist, by key: one index check
// for those cached, and one read (GetMany) of those not cached or
// changed since. A record that does not decode is an error naming its
// key.
func (c *Cache[T]) GetAll(ctx context.Context, s Store, ks []string) (map[string]Cached[T], error) {
	return c.getAll(ctx, s, ks, false)
}

// getAll is GetAll; with skipBad a record that does not decode is left
// out instead of failing the call.
func (c *Cache[T]) getAll(ctx context.Context, s Store, ks []string, skipBad bool) (map[string]Cached[T], error) {
	cached := map[string]Cached[T]{}
	known := map[string]uint64{}
	for _, k := range ks {
		if cur, ok := c.lookup(k); ok {
			cached[k], known[k] = cur, cur.ModifyIndex
		}
	}
	changed, err := Changed(ctx, s, known)
	if err != nil {
		return nil, err
	}
	stale := make(map[string]bool, len(changed))
	for _, k := range changed {
		stale[k] = true
	}
	var toRead []string
	for _, k := range ks {
		if _, ok := cached[k]; !ok || stale[k] {
			toRead = append(toRead, k)
		}
	}
	read, err := GetMany(ctx, s, toRead)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Cached[T], len(ks))
	for _, k := range ks {
		cur, ok := cached[k]
		if !ok || stale[k] {
			kv, found := read[k]
			if !found {
				c.forget(k)
				continue
			}
			if cur, err = c.keep(kv); err != nil {
				if skipBad {
					continue
				}
				return nil, err
			}
		}
		out[k] = cur
	}
	return out, nil
}

// List returns the records under prefix, sorted by key: the keys are
// listed without values, and only those not cached or changed since are
// read. Records that do not decode are left out.
func (c *Cache[T]) List(ctx context.Context, s Store, prefix string) ([]Cached[T], error) {
	if _, ok := s.(IndexChecker); !ok {
		return c.listAll(ctx, s, prefix)
	}
	ks, err := ListKeys(ctx, s, prefix)
	if err != nil {
		return nil, err
	}
	c.forgetUnder(prefix, ks)
	got, err := c.getAll(ctx, s, ks, true)
	if err != nil {
		return nil, err
	}
	out := make([]Cached[T], 0, len(got))
	for _, k := range ks {
		if cur, ok := got[k]; ok {
			out = append(out, cur)
		}
	}
	return out, nil
}

// listAll is List without an IndexChecker: one listing with the values.
func (c *Cache[T]) listAll(ctx context.Context, s Store, prefix string) ([]Cached[T], error) {
	kvs, _, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]Cached[T], 0, len(kvs))
	for _, kv := range kvs {
		v := new(T)
		if err := Decode(kv, v); err == nil {
			out = append(out, Cached[T]{Key: kv.Key, ModifyIndex: kv.ModifyIndex, Value: v})
		}
	}
	return out, nil
}

// keep decodes kv and caches it, or forgets its key when it does not
// decode (an error naming the key).
func (c *Cache[T]) keep(kv KV) (Cached[T], error) {
	v := new(T)
	if err := json.Unmarshal(kv.Value, v); err != nil {
		c.forget(kv.Key)
		return Cached[T]{}, fmt.Errorf("decode store key %q: %w", kv.Key, err)
	}
	cur := Cached[T]{Key: kv.Key, ModifyIndex: kv.ModifyIndex, Value: v}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]Cached[T]{}
	}
	c.m[kv.Key] = cur
	return cur, nil
}

func (c *Cache[T]) lookup(key string) (Cached[T], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.m[key]
	return cur, ok
}

func (c *Cache[T]) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

// Retain drops every cached key not in ks: for a cache asked only for a
// set that shrinks (a host's own endpoints' records), whose keys no
// longer asked are never read again to be found gone.
func (c *Cache[T]) Retain(ks []string) { c.forgetUnder("", ks) }

// Len is the number of records cached.
func (c *Cache[T]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// forgetUnder drops the cached keys under prefix that are not in listed.
func (c *Cache[T]) forgetUnder(prefix string, listed []string) {
	keep := make(map[string]bool, len(listed))
	for _, k := range listed {
		keep[k] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, prefix) && !keep[k] {
			delete(c.m, k)
		}
	}
}

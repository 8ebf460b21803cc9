package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// fullListEvery bounds how long a member follows a network's change log
// without listing all its endpoint records (see changes.go): the delay of
// endpoints written by hosts of an earlier version, during an upgrade.
// A full listing that finds nothing the log did not name doubles the
// period, up to fullListMax: a cluster without such hosts lists rarely.
const (
	fullListEvery = time.Minute
	fullListMax   = 16 * time.Minute
)

// listing is a network's endpoint records as a member knows them, and
// its position in the network's change log.
type listing struct {
	kvs    []store.KV    // every endpoint record, sorted by key
	index  uint64        // store index of the change log read: the next watch waits for a later one
	seq    uint64        // the last change applied to kvs
	listed time.Time     // when kvs was last listed in full
	every  time.Duration // until the next full listing
	err    error
}

// follow sends the network's endpoint records after the next change of
// its change log since prev; a zero prev (start, or after a failure)
// lists them at once.
func (d *Driver) follow(ctx context.Context, key string, prev listing, out chan<- listing) {
	out <- d.nextListing(ctx, key, prev)
}

func (d *Driver) nextListing(ctx context.Context, key string, prev listing) listing {
	if prev.index == 0 {
		return d.fullListing(ctx, key)
	}
	if time.Since(prev.listed) >= prev.every {
		return d.periodicListing(ctx, key, prev)
	}
	wctx, cancel := context.WithDeadline(ctx, prev.listed.Add(prev.every))
	defer cancel()
	kvs, index, err := d.o.Store.Watch(wctx, keys.Changes(key), prev.index)
	if err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			return d.periodicListing(ctx, key, prev)
		}
		return listing{err: err}
	}
	log, err := changeLogOf(kvs, key)
	if err != nil {
		return listing{err: err}
	}
	ids, ok := log.since(prev.seq)
	if !ok {
		return d.fullListing(ctx, key) // fell behind the log
	}
	next := listing{kvs: slices.Clone(prev.kvs), index: index, seq: log.Seq, listed: prev.listed, every: prev.every}
	for _, id := range ids {
		k := keys.Endpoint(key, id)
		kv, err := d.o.Store.Get(ctx, k)
		switch {
		case errors.Is(err, store.ErrNotFound):
			next.kvs = slices.DeleteFunc(next.kvs, func(kv store.KV) bool { return kv.Key == k })
		case err != nil:
			return listing{err: fmt.Errorf("network %s: read changed endpoint: %w", key, err)}
		default:
			next.kvs = upsert(next.kvs, kv)
		}
	}
	return next
}

// fullListing reads the change log, then every endpoint record: a change
// after the log was read is named by a later entry of it.
func (d *Driver) fullListing(ctx context.Context, key string) listing {
	kvs, index, err := d.o.Store.List(ctx, keys.Changes(key))
	if err != nil {
		return listing{err: err}
	}
	log, err := changeLogOf(kvs, key)
	if err != nil {
		return listing{err: err}
	}
	eps, _, err := d.o.Store.List(ctx, keys.Endpoints(key))
	if err != nil {
		return listing{err: err}
	}
	return listing{kvs: eps, index: index, seq: log.Seq, listed: time.Now(), every: fullListEvery}
}

// periodicListing is the full listing due after prev.every: when it finds
// the records prev had at the same log position, nothing was written
// without the log, and the next one comes after twice the period.
func (d *Driver) periodicListing(ctx context.Context, key string, prev listing) listing {
	l := d.fullListing(ctx, key)
	if l.err == nil && l.seq == prev.seq && slices.EqualFunc(l.kvs, prev.kvs, func(a, b store.KV) bool {
		return a.Key == b.Key && a.ModifyIndex == b.ModifyIndex
	}) {
		l.every = min(2*prev.every, fullListMax)
	}
	return l
}

// changeLogOf finds network key's change log in a listing of its prefix
// (a zero log when it is absent).
func changeLogOf(kvs []store.KV, key string) (ChangeLog, error) {
	var log ChangeLog
	for _, kv := range kvs {
		if kv.Key == keys.Changes(key) {
			return log, store.Decode(kv, &log)
		}
	}
	return log, nil
}

// upsert puts kv into kvs, sorted by key, in place of a KV of that key.
func upsert(kvs []store.KV, kv store.KV) []store.KV {
	i, found := slices.BinarySearchFunc(kvs, kv.Key, func(a store.KV, k string) int { return strings.Compare(a.Key, k) })
	if found {
		kvs[i] = kv
		return kvs
	}
	return slices.Insert(kvs, i, kv)
}

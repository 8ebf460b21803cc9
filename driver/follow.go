package driver

import (
	"context"
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
	log    ChangeLog     // as read by a full listing, before its records
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
	kvs, index, err := d.waitLog(wctx, key, prev.index)
	if err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			return d.periodicListing(ctx, key, prev)
		}
		return listing{err: err}
	}
	log, logIndex, err := changeLogOf(kvs, key)
	if err != nil {
		return listing{err: err}
	}
	ids, ok := log.since(prev.seq)
	if !ok {
		return d.fullListing(ctx, key) // fell behind the log
	}
	next := listing{kvs: slices.Clone(prev.kvs), index: index, seq: log.Seq, listed: prev.listed, every: prev.every}
	carried := log.carried(key, logIndex)
	var unread []string
	for _, id := range ids {
		if kv, ok := carried[id]; ok {
			next.kvs = upsert(next.kvs, kv)
		} else {
			unread = append(unread, keys.Endpoint(key, id))
		}
	}
	// The records the log does not carry, read together (one request):
	// a member a few rounds of the log watch behind is more than
	// carriedRecords changes behind on a busy network.
	got, err := store.GetMany(ctx, d.o.Store, unread)
	if err != nil {
		return listing{err: fmt.Errorf("network %s: read changed endpoints: %w", key, err)}
	}
	for _, k := range unread {
		if kv, ok := got[k]; ok {
			next.kvs = upsert(next.kvs, kv)
		} else { // removed
			next.kvs = slices.DeleteFunc(next.kvs, func(kv store.KV) bool { return kv.Key == k })
		}
	}
	return next
}

// fullListing reads the change log and every endpoint record: in one
// read where the store has one (store.ManyReader, change 23), else the
// log first, then the records: a change after the log was read is named
// by a later entry of it. The watch goes on from the log's index (from a
// listing's, as before, when the log is absent).
//
// Why one read: every member's watcher of every network starts with a
// full listing, and lists again when it falls behind the log; at 200
// simulated hosts the two requests were 2.7 each per join of the create
// phase (21,238 of its store calls; docs/scaling.md).
func (d *Driver) fullListing(ctx context.Context, key string) listing {
	if _, ok := d.o.Store.(store.ManyReader); !ok {
		return d.fullListingEach(ctx, key)
	}
	lists, got, err := store.ReadMany(ctx, d.o.Store, []string{keys.Endpoints(key)}, []string{keys.Changes(key)})
	if err != nil {
		return listing{err: err}
	}
	logKV, ok := got[keys.Changes(key)]
	if !ok {
		return d.fullListingEach(ctx, key) // a network of an earlier version: no log yet
	}
	log, _, err := changeLogOf([]store.KV{logKV}, key)
	if err != nil {
		return listing{err: err}
	}
	return listing{kvs: lists[keys.Endpoints(key)], index: logKV.ModifyIndex, seq: log.Seq, listed: time.Now(), every: fullListEvery, log: log}
}

// fullListingEach is fullListing in two requests: the change log's
// listing, then the endpoint records'.
func (d *Driver) fullListingEach(ctx context.Context, key string) listing {
	kvs, index, err := d.o.Store.List(ctx, keys.Changes(key))
	if err != nil {
		return listing{err: err}
	}
	log, _, err := changeLogOf(kvs, key)
	if err != nil {
		return listing{err: err}
	}
	eps, _, err := d.o.Store.List(ctx, keys.Endpoints(key))
	if err != nil {
		return listing{err: err}
	}
	return listing{kvs: eps, index: index, seq: log.Seq, listed: time.Now(), every: fullListEvery, log: log}
}

// periodicListing is the full listing due after prev.every: when every
// record it finds added, changed or gone since prev is named by the log
// after prev's position, nothing was written without the log, and the
// next one comes after twice the period. (Before, only a listing at
// prev's very log position could back off: during endpoint adds every
// member listed every network in full each minute.)
func (d *Driver) periodicListing(ctx context.Context, key string, prev listing) listing {
	l := d.fullListing(ctx, key)
	if l.err == nil && onlyLogged(key, prev, l) {
		l.every = min(2*prev.every, fullListMax)
	}
	return l
}

// onlyLogged tells whether every difference between the records of prev
// and of the full listing l is named by l's log after prev's position. A
// record written after l read its log is not named yet: it counts as a
// write without the log, which errs on the side of listing again soon.
func onlyLogged(key string, prev, l listing) bool {
	ids, ok := l.log.since(prev.seq)
	if !ok {
		return false
	}
	named := map[string]bool{}
	for _, id := range ids {
		named[keys.Endpoint(key, id)] = true
	}
	was := make(map[string]uint64, len(prev.kvs))
	for _, kv := range prev.kvs {
		was[kv.Key] = kv.ModifyIndex
	}
	for _, kv := range l.kvs {
		if idx, in := was[kv.Key]; (!in || idx != kv.ModifyIndex) && !named[kv.Key] {
			return false
		}
		delete(was, kv.Key)
	}
	for k := range was { // gone since prev
		if !named[k] {
			return false
		}
	}
	return true
}

// changeLogOf finds network key's change log and its store index in a
// listing of its prefix (a zero log and index when it is absent).
func changeLogOf(kvs []store.KV, key string) (ChangeLog, uint64, error) {
	var log ChangeLog
	for _, kv := range kvs {
		if kv.Key == keys.Changes(key) {
			return log, kv.ModifyIndex, store.Decode(kv, &log)
		}
	}
	return log, 0, nil
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

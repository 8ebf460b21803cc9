package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// RoundReader is implemented by stores that list prefixes and check the
// indexes of keys in one read (both backends do). A Round uses it to read
// up front, in one request, what the round before asked one request at a
// time.
//
// Why: every host, every --reconcile-interval (5 s), checks its own
// records: a listing of its networks, one index check each of their
// records, their pools and its endpoints' records, and a listing of its
// endpoint copies, five requests or more however little changed; at 200
// simulated hosts these were a third of the store requests of the
// network creates, on Consul servers that answer about a request per
// millisecond of CPU (docs/scaling.md, change 16).
type RoundReader interface {
	// ReadRound lists each of prefixes as List does and tells which keys
	// of known were written or deleted since the given indexes, as
	// Changed does. lists holds the listings it read: on Consul none
	// when a check failed (the transaction is rolled back); callers list
	// what is missing themselves. Prefixes must not nest.
	ReadRound(ctx context.Context, prefixes []string, known map[string]uint64) (lists map[string][]KV, changed []string, err error)
}

// Round is one round of periodic reads (a reconcile round): it records
// the prefixes listed (ListPrefix) and the keys checked or read (Changed,
// GetMany, at the index the caller holds after the round), and the next
// round, begun from it (NextRound), reads all of them in one request and
// answers those calls from that read. A call the read did not cover (a
// key not asked before, a cached index that moved since, a listing lost
// to a failed check) goes to the store as without a round.
//
// The answers are as of the round's start: a write after it is seen by
// the next round, as one just after a call made at that moment would be.
// Calls carry the round in their context (WithRound); calls without it
// are neither answered nor recorded, so searches a round makes only now
// and then (driver/sweep.go) stay out of the next round's read.
type Round struct {
	mu       sync.Mutex
	asked    map[string]uint64 // key → index held after this round
	prefixes map[string]bool   // listed in this round

	// The read at the round's start.
	passed map[string]uint64 // unchanged at that index
	failed map[string]uint64 // changed since that index
	lists  map[string][]KV
	// The second read's records of failed keys (absent: not in got),
	// each answered once (take).
	got    map[string]KV
	unread map[string]bool // failed keys read, not yet taken
}

type roundKey struct{}

// WithRound returns ctx carrying r: the store helpers called with it are
// answered from r's read and recorded for the next round.
func WithRound(ctx context.Context, r *Round) context.Context {
	return context.WithValue(ctx, roundKey{}, r)
}

// roundOf is the round ctx carries, or nil.
func roundOf(ctx context.Context) *Round {
	r, _ := ctx.Value(roundKey{}).(*Round)
	return r
}

// NextRound begins a round: where s is a RoundReader, one request reads
// what prev (nil for the first round) listed and asked. A failing read
// is no error: the round then asks everything of the store, one call at
// a time, as without it.
func NextRound(ctx context.Context, s Store, prev *Round) *Round {
	r := &Round{asked: map[string]uint64{}, prefixes: map[string]bool{}}
	rr, ok := s.(RoundReader)
	if !ok || prev == nil {
		return r
	}
	prev.mu.Lock()
	prefixes := slices.Sorted(maps.Keys(prev.prefixes))
	known := maps.Clone(prev.asked)
	prev.mu.Unlock()
	if len(prefixes) == 0 && len(known) == 0 {
		return r
	}
	lists, changed, err := rr.ReadRound(ctx, prefixes, known)
	if err != nil {
		return r
	}
	r.lists, r.passed, r.failed = lists, known, map[string]uint64{}
	for _, k := range changed {
		r.failed[k] = known[k]
		delete(r.passed, k)
	}
	r.readMoved(ctx, s, prefixes, changed)
	return r
}

// readMoved is the second read of a round whose checks found keys moved
// (change 24): the listings the first read lost (Consul rolls a
// transaction with a failed check back) and the moved records, in one
// request (ManyReader), which the round's calls are then answered from.
// Without a ManyReader, or when it fails, the calls ask the store.
//
// Why: while networks are created every join moves records each member
// checks, and such a round listed the host's records again and read the
// moved records in a request each (list hosts/ 11,248, get many network
// 13,018 of the 200-host create phase; docs/scaling.md).
func (r *Round) readMoved(ctx context.Context, s Store, prefixes, changed []string) {
	var lost []string
	for _, p := range prefixes {
		if _, ok := r.lists[p]; !ok {
			lost = append(lost, p)
		}
	}
	mr, ok := s.(ManyReader)
	if !ok || len(lost)+len(changed) == 0 {
		return
	}
	lists, got, err := mr.ReadMany(ctx, lost, changed)
	if err != nil {
		return
	}
	if r.lists == nil {
		r.lists = map[string][]KV{}
	}
	for p, kvs := range lists {
		r.lists[p] = kvs
	}
	r.got, r.unread = got, make(map[string]bool, len(changed))
	for _, k := range changed {
		r.unread[k] = true
	}
}

// take answers what it can of a read of ks from the round's second read,
// each key once (a later read, after this round's own writes, asks the
// store): the records read (absent keys left out) and the keys left to
// ask.
func (r *Round) take(ks []string) (got map[string]KV, rest []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got = map[string]KV{}
	for _, k := range ks {
		if !r.unread[k] {
			rest = append(rest, k)
			continue
		}
		delete(r.unread, k)
		if kv, ok := r.got[k]; ok {
			got[k] = kv
		}
	}
	return got, rest
}

// list answers a listing of prefix from the round's read, and records it.
func (r *Round) list(prefix string) ([]KV, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prefixes[prefix] = true
	kvs, ok := r.lists[prefix]
	return kvs, ok
}

// check answers what it can of known from the round's read: the keys
// known changed, and those left to ask. It records known.
func (r *Round) check(known map[string]uint64) (changed []string, ask map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ask = map[string]uint64{}
	for k, idx := range known {
		r.asked[k] = idx
		if p, ok := r.passed[k]; ok && p == idx {
			continue
		}
		if f, ok := r.failed[k]; ok && f == idx {
			changed = append(changed, k)
			continue
		}
		ask[k] = idx
	}
	return changed, ask
}

// read records the keys ks read: at their new index, or gone.
func (r *Round) read(ks []string, got map[string]KV) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range ks {
		if kv, ok := got[k]; ok {
			r.asked[k] = kv.ModifyIndex
		} else {
			delete(r.asked, k)
		}
	}
}

// ListPrefix returns every key under prefix with its value, sorted by
// key, as s.List: from the read of the round ctx carries, if that listed
// it, else from s; the round records it either way.
func ListPrefix(ctx context.Context, s Store, prefix string) ([]KV, error) {
	r := roundOf(ctx)
	if r != nil {
		if kvs, ok := r.list(prefix); ok {
			return kvs, nil
		}
	}
	kvs, _, err := s.List(ctx, prefix)
	return kvs, err
}

// checkRound answers Changed from the round ctx carries, asking s only
// the keys the round's read did not cover.
func checkRound(ctx context.Context, s Store, known map[string]uint64, ask func(map[string]uint64) ([]string, error)) ([]string, error) {
	r := roundOf(ctx)
	if r == nil {
		return ask(known)
	}
	changed, rest := r.check(known)
	if len(rest) == 0 {
		return changed, nil
	}
	more, err := ask(rest)
	if err != nil {
		return nil, err
	}
	return append(changed, more...), nil
}

// ReadRound is s's ReadRound where s is a RoundReader, else ReadRoundEach:
// for wrappers that keep the read of their store.
func ReadRound(ctx context.Context, s Store, prefixes []string, known map[string]uint64) (map[string][]KV, []string, error) {
	if rr, ok := s.(RoundReader); ok {
		return rr.ReadRound(ctx, prefixes, known)
	}
	return ReadRoundEach(ctx, s, prefixes, known)
}

// ReadRoundEach is ReadRound from the calls it stands for, for stores
// that have no one request for them: a List per prefix and one Changed.
func ReadRoundEach(ctx context.Context, s Store, prefixes []string, known map[string]uint64) (map[string][]KV, []string, error) {
	lists, err := listEach(ctx, s, prefixes)
	if err != nil {
		return nil, nil, err
	}
	changed, err := Changed(ctx, s, known)
	if err != nil {
		return nil, nil, err
	}
	return lists, changed, nil
}

// listEach lists each of prefixes, one List each, after NoNesting.
func listEach(ctx context.Context, s Store, prefixes []string) (map[string][]KV, error) {
	if err := NoNesting(prefixes); err != nil {
		return nil, err
	}
	lists := make(map[string][]KV, len(prefixes))
	for _, p := range prefixes {
		kvs, _, err := s.List(ctx, p)
		if err != nil {
			return nil, err
		}
		lists[p] = kvs
	}
	return lists, nil
}

// NoNesting fails when one of prefixes starts another: a listing read
// along with others could not be told apart (ReadRound's contract).
func NoNesting(prefixes []string) error {
	for i, a := range prefixes {
		for j, b := range prefixes {
			if i != j && strings.HasPrefix(b, a) {
				return fmt.Errorf("read round: prefix %q holds prefix %q", a, b)
			}
		}
	}
	return nil
}

package driver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vxnet/vxnet/internal/pause"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// One watch of the change logs per host (change 14, docs/scaling.md).
//
// Why: every member of a network held a blocking query on the network's
// change log, and each endpoint add woke all of them: a request per
// member per add, about a millisecond of a Consul server's CPU each
// (212,700 of the add phase's requests at 100 simulated hosts, where every
// host is on every network). Here a host holds one blocking query on the
// keys under changes/ (store.WatchKeys: the keys alone), issued no sooner
// than the pace allows after its last round began (logpace.go; 500 ms
// before change 20). A round asks which logs of its networks moved (one
// index check, store.Changed) and reads those together (one
// store.GetManyStale, answered by the server the host asks since change
// 31: readMovedLogs), then hands each to its network's follower
// (waitLog, in place of the follower's own watch). A host spends at most
// three requests a round on following all its networks, however many
// endpoints are added meanwhile; a change reaches it at most a round's gap
// and three requests after it was written.
//
// While its logs keep moving (change 20), a round after one that read
// moved logs checks them without the watch, which would return at once:
// two requests a round instead of three. After the first round that finds
// nothing, the next waits on the watch again, from the index of the last
// one: it returns at once if anything moved since, then blocks.
//
// The round's reads are not linearizable (change 20): the index check is
// answered by Consul's leader without a quorum round, and may be a moment
// old during a change of leader; the logs' read (change 31) by any server
// in touch with the leader, a moment behind it, and by the leader for the
// logs that server has not seen move (readMovedLogs). That is harmless to
// a follower: a log older than the one it has (a lower sequence number, or
// absent) makes it list the network consistently (follow.go); an older
// log that still names changes it has not seen names them as they were
// written, and the next round, finding the log's index moved, reads it
// again. A follower drops an endpoint only on a consistent read (a
// record the log does not carry, read absent; a full listing).
//
// Invariant: a write after the blocking query answered at index P has a
// larger index, so the next query returns at once and the round after it
// reads the logs as they are then. A network is followed (followLog)
// before its follower first lists it, so every change is either in that
// listing or after a later answer of the query.
//
// Upgrade: nothing changes in the store. Hosts of an earlier version
// advance the logs as before, which wakes this query; records of hosts
// that predate the logs reach a host by its periodic full listing, as
// before.

// logWatch is what a host knows of the change logs of the networks it
// follows. The zero value is ready: the watch starts with the first
// network followed and runs until the driver closes.
type logWatch struct {
	mu      sync.Mutex
	nets    map[string]*logState // network key → its log
	some    chan struct{}        // a network was followed (cap 1)
	running bool
}

// logState is one network's change log as a round last read it, or the
// newest index its follower listed.
type logState struct {
	follows int       // watchers following it
	kv      *store.KV // the log as read; nil: absent, or not read
	index   uint64    // kv's index (absent: larger than the last one seen), or the follower's
	read    bool      // kv and index are a round's read, not the follower's index
	ver     uint64    // counts the follower's index updates: a round's read from before one is dropped
	moved   chan struct{}
}

// followLog has the host's watch follow network key's change log.
func (d *Driver) followLog(key string) {
	w := &d.logs
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nets == nil {
		w.nets, w.some = map[string]*logState{}, make(chan struct{}, 1)
	}
	st := w.nets[key]
	if st == nil {
		st = &logState{moved: make(chan struct{})}
		w.nets[key] = st
	}
	st.follows++
	select {
	case w.some <- struct{}{}:
	default:
	}
	if !w.running {
		w.running = true
		go d.watchLogs(d.life)
	}
}

// unfollowLog undoes one followLog.
func (d *Driver) unfollowLog(key string) {
	w := &d.logs
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.nets[key]; st != nil {
		if st.follows--; st.follows <= 0 {
			delete(w.nets, key)
		}
	}
}

// waitLog is what Store.Watch of network key's change log returns, from
// the host's watch where the network is followed: the log (none if
// absent) and its index, once that differs from index. An index newer
// than any the watch read (the follower listed since) is kept, and only a
// later read returns.
func (d *Driver) waitLog(ctx context.Context, key string, index uint64) ([]store.KV, uint64, error) {
	w := &d.logs
	w.mu.Lock()
	st := w.nets[key]
	if st == nil {
		w.mu.Unlock()
		return d.o.Store.Watch(ctx, keys.Changes(key), index)
	}
	defer w.mu.Unlock()
	switch {
	case st.read && st.index > index:
		return st.result()
	case st.index < index:
		st.index, st.read = index, false
		st.ver++
	}
	for {
		moved := st.moved
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			w.mu.Lock()
			return nil, 0, fmt.Errorf("watch change log of network %s: %w", key, ctx.Err())
		case <-moved:
		}
		w.mu.Lock()
		if st.read && st.index != index {
			return st.result()
		}
	}
}

// result is the state as Store.Watch would return it. w.mu is held.
func (st *logState) result() ([]store.KV, uint64, error) {
	if st.kv == nil {
		return nil, st.index, nil
	}
	return []store.KV{*st.kv}, st.index, nil
}

// set records a round's read of the log (nil: absent) and wakes its
// follower. w.mu is held.
func (st *logState) set(kv *store.KV, index uint64) {
	st.kv, st.index, st.read = kv, index, true
	close(st.moved)
	st.moved = make(chan struct{})
}

// watchLogs is the host's watch of the change logs: a round after each
// answer of the blocking query, paced by logPace.
func (d *Driver) watchLogs(ctx context.Context) {
	var (
		index   uint64
		pace    logPace
		failing bool
		// seen is the largest index of a log a round read; busy tells
		// that the last round read moved logs: the next checks them
		// without the watch (something moves all the time: the watch
		// would return at once).
		seen uint64
		busy bool
	)
	for d.logs.waitFollowed(ctx) {
		pause.For(ctx, time.Until(pace.next()))
		var (
			ks      []string
			next    = index
			err     error
			watched = !busy
		)
		if watched {
			ks, next, err = store.WatchKeys(ctx, d.o.Store, keys.AllChanges, index)
		}
		if err == nil {
			start := time.Now()
			var (
				moved bool
				top   uint64
			)
			moved, top, err = d.logRound(ctx, ks, next, watched)
			// A round that read no log of its own is paced as idle only
			// when the watch woke it for a write after every log read:
			// another network's change. Not when it checked without the
			// watch, nor when the write that woke it was read already
			// (written after the watch answered, and read by the round
			// that followed).
			pace.done(start, time.Now(), moved || !watched || next <= seen, d.memberCount())
			seen, busy = max(seen, top), moved && err == nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				d.o.Log.WithError(err).Warn("watching the change logs failed; keeping current peers and retrying")
			}
			failing = true
			pause.For(ctx, time.Second)
			continue
		}
		if failing {
			d.o.Log.Info("watching the change logs works again")
		}
		failing, index = false, next
	}
}

// waitFollowed blocks while no network is followed; false when ctx ends.
func (w *logWatch) waitFollowed(ctx context.Context) bool {
	for {
		w.mu.Lock()
		n, some := len(w.nets), w.some
		w.mu.Unlock()
		if n > 0 {
			return ctx.Err() == nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-some:
		}
	}
}

// logRound reads the followed logs that moved: one index check, one read
// of those that moved. After a watch (watched), present are the keys
// under changes/ at the query's index: those are checked, a log no longer
// present is read as absent. Without one, every followed log not known
// absent is checked (an absent one counts as moved). moved tells that a
// followed log moved; top is the largest index of the logs read.
func (d *Driver) logRound(ctx context.Context, present []string, index uint64, watched bool) (moved bool, top uint64, err error) {
	in := make(map[string]bool, len(present))
	for _, k := range present {
		in[k] = true
	}
	w := &d.logs
	known, vers := map[string]uint64{}, map[string]uint64{}
	w.mu.Lock()
	for key, st := range w.nets {
		switch k := keys.Changes(key); {
		case in[k], !watched && !(st.read && st.kv == nil):
			known[k], vers[k] = st.index, st.ver
		case watched && st.read && st.kv != nil:
			st.set(nil, max(index, st.index+1))
		}
	}
	w.mu.Unlock()
	changed, err := store.Changed(ctx, d.o.Store, known)
	if err != nil {
		return false, 0, fmt.Errorf("check the change logs of %d networks: %w", len(known), err)
	}
	if len(changed) == 0 {
		return false, 0, nil
	}
	got, err := d.readMovedLogs(ctx, changed, known)
	if err != nil {
		return true, 0, fmt.Errorf("read %d changed change logs: %w", len(changed), err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range changed {
		st := w.nets[strings.TrimPrefix(k, keys.AllChanges)]
		if st == nil || st.ver != vers[k] {
			continue // no longer followed, or its follower listed since
		}
		// Moved: at another index than known, or gone. (A store without
		// an index check reports every log changed.)
		if kv, ok := got[k]; ok {
			top, moved = max(top, kv.ModifyIndex), moved || kv.ModifyIndex != known[k]
			st.set(&kv, kv.ModifyIndex)
		} else {
			moved = moved || st.kv != nil
			st.set(nil, max(index, st.index+1))
		}
	}
	return moved, top, nil
}

// readMovedLogs reads the logs the round's check found moved (changed,
// from the indexes known): by the server the host asks (change 31), and
// those it answers absent or not newer than known, again from the leader.
//
// Why: the server asked may be a follower behind the leader that
// answered the check (or the watch): its copy of a log can be the one
// known, absent if the log is new, or older than known (known read from
// the leader). Taken as read, the first would count as unmoved, the round
// could end the busy streak, and the watch would block from an index past
// the write: a change missed until the next write; the last would send
// the follower back to a full listing (a lower sequence number). A log
// answered newer than known but older than the leader's counts as moved,
// and the next round's check (by the leader) finds it at another index
// again. Not linearizable either way: see the top of
// this file for why that is harmless.
func (d *Driver) readMovedLogs(ctx context.Context, changed []string, known map[string]uint64) (map[string]store.KV, error) {
	got, err := store.GetManyStale(ctx, d.o.Store, changed)
	if _, stale := d.o.Store.(store.StaleGetter); err != nil || !stale {
		return got, err // without one, the leader answered
	}
	var behind []string
	for _, k := range changed {
		if kv, ok := got[k]; !ok || kv.ModifyIndex <= known[k] {
			behind = append(behind, k)
		}
	}
	if len(behind) == 0 {
		return got, nil
	}
	again, err := store.GetManyLeader(ctx, d.o.Store, behind)
	if err != nil {
		return nil, err
	}
	for _, k := range behind {
		if kv, ok := again[k]; ok {
			got[k] = kv
		} else {
			delete(got, k)
		}
	}
	return got, nil
}

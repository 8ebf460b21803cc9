package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// The change log of a network (changes/<net>, a ChangeLog) is what its
// members watch instead of the prefix endpoints/<net>/ (since change 14
// through the host's one watch of all change logs, logwatch.go).
//
// Why: Consul answers a blocking query on a prefix with the whole prefix,
// so with a prefix watch every endpoint add cost every member a read of
// every endpoint record of the network: bytes per event grew with the
// network's size. The change log is one small key naming the last
// changed endpoints (by a sequence number); a member woken by it reads
// only the records named after the sequence number it has, and lists the
// whole prefix only when it starts, when it fell behind the log (more
// than changeLogSize changes since its last read), or after its own read
// failed.
//
// Invariant: every write of an endpoint record also advances the log:
// in the same transaction where it can (endpoint add and removal, the
// hot path), else right after the write (noteChanges). A member reads the
// log before it lists the prefix, so a change it misses between the two
// is named by a later log entry. Hosts of an earlier version write
// records without advancing the log: a member also lists the whole prefix
// every fullListEvery, which bounds how late their endpoints arrive
// during a rolling upgrade.
const changeLogSize = 32

// ChangeLog is the value of changes/<net>.
type ChangeLog struct {
	// Seq numbers the changes of the network; Recent holds the last
	// changeLogSize, oldest first, the last one numbered Seq.
	Seq    uint64   `json:"seq"`
	Recent []Change `json:"recent"`
}

// Change names one endpoint whose record was written or deleted.
type Change struct {
	Seq      uint64 `json:"seq"`
	Endpoint string `json:"endpoint"`
	// Prev is the log's store index that the write adding this change
	// replaced (0: not known). Record is the endpoint's record as
	// written in the same transaction as the change, absent for a
	// removal and a record written apart (carried.go).
	Prev   uint64          `json:"prev,omitempty"`
	Record json.RawMessage `json:"record,omitempty"`
}

// with returns the log advanced by the endpoints ids.
func (l ChangeLog) with(ids ...string) ChangeLog {
	next := ChangeLog{Seq: l.Seq, Recent: slices.Clone(l.Recent)}
	for _, id := range ids {
		next.Seq++
		next.Recent = append(next.Recent, Change{Seq: next.Seq, Endpoint: id})
	}
	if over := len(next.Recent) - changeLogSize; over > 0 {
		next.Recent = next.Recent[over:]
	}
	return next
}

// since returns the endpoints changed after seq, or ok false when the log
// does not reach back that far (the reader must list the prefix).
func (l ChangeLog) since(seq uint64) (ids []string, ok bool) {
	if l.Seq < seq {
		return nil, false // the log was removed and written anew
	}
	if l.Seq == seq {
		return nil, true
	}
	if len(l.Recent) == 0 || l.Recent[0].Seq > seq+1 {
		return nil, false
	}
	for _, c := range l.Recent {
		if c.Seq > seq && !slices.Contains(ids, c.Endpoint) {
			ids = append(ids, c.Endpoint)
		}
	}
	return ids, true
}

// readChangeLog reads network net's change log and its index (0, and an
// empty log, when it does not exist).
func readChangeLog(ctx context.Context, s store.Store, net string) (ChangeLog, uint64, error) {
	l, idx, err := store.GetJSON[ChangeLog](ctx, s, keys.Changes(net))
	if errors.Is(err, store.ErrNotFound) {
		return ChangeLog{}, 0, nil
	}
	if err != nil {
		return ChangeLog{}, 0, fmt.Errorf("read change log of network %s: %w", net, err)
	}
	return *l, idx, nil
}

// changeOp is the write that advances network net's log by ids, valid
// while the log is still at the index read.
func changeOp(ctx context.Context, s store.Store, net string, ops []store.Op, ids ...string) (store.Op, error) {
	l, idx, err := readChangeLog(ctx, s, net)
	if err != nil {
		return store.Op{}, err
	}
	b, err := json.Marshal(l.withWrite(net, idx, ops, ids...))
	if err != nil {
		return store.Op{}, fmt.Errorf("encode change log of network %s: %w", net, err)
	}
	return store.Op{Verb: store.VerbCAS, Key: keys.Changes(net), Value: b, Index: idx}, nil
}

// txnWithChanges applies ops together with the advance of network net's
// log by ids. Another writer's advance in between is retried while ctx's
// deadline lasts (store.Retry: every member of a network writes the one
// log, and at 3 hosts removing 4 endpoints each at once 16 attempts ran
// out with seconds of the callback left); a conflict on one of ops is
// returned (wrapping store.ErrConflict).
func txnWithChanges(ctx context.Context, s store.Store, net string, ops []store.Op, ids ...string) error {
	r := store.Retrying(ctx)
	for r.Next() {
		op, err := changeOp(ctx, s, net, ops, ids...)
		if err != nil {
			return err
		}
		err = s.Txn(ctx, append(slices.Clone(ops), op))
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		if _, idx, rerr := readChangeLog(ctx, s, net); rerr != nil || idx == op.Index {
			return err // the conflict is on ops, not on the log
		}
	}
	return r.Err(fmt.Sprintf("network %s: advance change log %q", net, keys.Changes(net)))
}

// noteChanges advances network net's log by ids after their records were
// written on their own (the rarer paths: names, republish, forget).
func noteChanges(ctx context.Context, s store.Store, net string, ids ...string) error {
	_, err := store.Update(ctx, s, keys.Changes(net), func(cur *ChangeLog) (*ChangeLog, error) {
		var l ChangeLog
		if cur != nil {
			l = *cur
		}
		next := l.with(ids...)
		return &next, nil
	})
	if err != nil {
		return fmt.Errorf("network %s: note changed endpoints %s: %w", net, strings.Join(ids, ", "), err)
	}
	return nil
}

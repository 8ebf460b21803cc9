package driver

import (
	"encoding/json"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// The change log carries the records it names (change 9, docs/scaling.md).
//
// Why: a member woken by the log read each changed record with a Get, a
// consistent read (a quorum round of Consul's leader): h members × one
// Get per endpoint add, the largest share of the Consul servers' work in
// the add phase at 100 hosts. An endpoint add writes its record and the
// log in one transaction, so the log can hold the record's bytes as
// written, and a member takes them from the log instead of reading the
// record.
//
// What a member needs besides the bytes is the record's store index (peer
// conflicts keep the record of the lower index on every host). A record
// written in one transaction with the log has the index that transaction
// gave the log; the next write of the log is a CAS against that index,
// and the change it adds keeps it as Prev. So the index of a change's
// record is the next change's Prev, or for the last change the log's own
// index. Where that is not known (a change added by noteChanges or by a
// host of an earlier version, which leaves Prev out) the member reads the
// record as before. A removal carries nothing: its Get (consistent) says
// the record is gone.
//
// Only the last carriedRecords changes keep their records, so the log
// stays a few KB: a woken member is rarely more than a few changes behind,
// and for older ones it reads the record. Hosts of an earlier version
// ignore the fields, and drop them when they rewrite the log.
const carriedRecords = 8

// withWrite is the log advanced by ids in a write that replaces the log at
// index idx together with ops: a single endpoint's record among ops is
// carried by its change.
func (l ChangeLog) withWrite(net string, idx uint64, ops []store.Op, ids ...string) ChangeLog {
	next := l.with(ids...)
	if len(ids) == 0 {
		return next
	}
	first := &next.Recent[len(next.Recent)-len(ids)]
	first.Prev = idx
	if len(ids) == 1 {
		first.Record = recordIn(ops, keys.Endpoint(net, ids[0]))
	}
	for i := range max(0, len(next.Recent)-carriedRecords) {
		next.Recent[i].Record = nil
	}
	return next
}

// recordIn is the value ops write to key, nil if none does.
func recordIn(ops []store.Op, key string) json.RawMessage {
	for _, op := range ops {
		if op.Key == key && op.Verb != store.VerbDelete && json.Valid(op.Value) {
			return json.RawMessage(op.Value)
		}
	}
	return nil
}

// carried returns the records the log carries for network net, by
// endpoint, as a read of them would (key, value, index), for the endpoints
// whose last change carries its record with a known index; logIndex is
// the log's own store index.
func (l ChangeLog) carried(net string, logIndex uint64) map[string]store.KV {
	out := map[string]store.KV{}
	for i, c := range l.Recent {
		index := logIndex
		if i+1 < len(l.Recent) {
			index = l.Recent[i+1].Prev
		}
		if c.Record == nil || index == 0 {
			delete(out, c.Endpoint)
			continue
		}
		out[c.Endpoint] = store.KV{Key: keys.Endpoint(net, c.Endpoint), Value: c.Record, ModifyIndex: index}
	}
	return out
}

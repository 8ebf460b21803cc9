package ipam

import (
	"context"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// The pool record a network create holds (change 22, docs/scaling.md).
//
// A network create on a host is RequestPool, the gateway's
// RequestAddress and, once the network exists, SetupDone: each updated
// the pool record after a read of it, and RequestPool and the gateway
// request read it once more each, five reads of a record that grows with
// the pool's hosts, on every host joining every network (21,480 of the
// create phase's store calls at 200 simulated hosts). Now RequestPool
// reads it once (finishRemoval's read), and each update starts from the
// record as this IPAM last read or wrote it (store.UpdateHeld): its CAS
// on that index fails if another host wrote the record meanwhile, and
// only then is it read again.
//
// Why a held copy is safe: every write is a CAS on the index it was read
// at, so a stale copy costs a failed CAS and a read, never a lost
// update. What the steps decide without writing from a held copy holds
// for any newer record too: the gateway, once set, is fixed while the
// pool exists, and the pool cannot go while this host is a user (it
// holds it from RequestPool on, until ReleasePool, which drops the copy);
// this host's setup flag is cleared only by this host's SetupDone. The
// copy is dropped at SetupDone (the create is done) and at ReleasePool.

// hold keeps h as pool id's record as this host last read or wrote it
// (nil: none).
func (m *IPAM) hold(id string, h *store.Held[Pool]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h == nil {
		delete(m.held, id)
		return
	}
	if m.held == nil {
		m.held = map[string]store.Held[Pool]{}
	}
	m.held[id] = *h
}

// release drops pool id's held record.
func (m *IPAM) release(id string) { m.hold(id, nil) }

// heldPool returns pool id's held record, if the pool was in use then.
func (m *IPAM) heldPool(id string) (*Pool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.held[id]
	if !ok || h.Value == nil || h.Value.removed() {
		return nil, false
	}
	return h.Value, true
}

// updateHeldPool is updatePool starting from the held record of pool id
// (a read where none is held), and holds what it wrote.
func (m *IPAM) updateHeldPool(ctx context.Context, id string, fn func(cur *Pool) (*Pool, error)) (*Pool, error) {
	m.mu.Lock()
	h, ok := m.held[id]
	m.mu.Unlock()
	var from *store.Held[Pool]
	if ok {
		from = &h
	}
	next, idx, err := updateHeld(ctx, m.o.Store, keys.Pool(id), from, fn)
	switch {
	case err != nil:
		m.release(id)
	case idx != 0:
		m.hold(id, &store.Held[Pool]{Value: next, Index: idx})
	}
	return next, err
}

package driver

import (
	"math/rand/v2"
	"sync"
	"time"
)

// sweepClock decides when reconcile searches the whole cluster for this
// host's leftovers: the networks it joined and the VNIs it reserved in a
// create killed half-way (dropStale), and the pools it left held by a
// release killed half-way (the IPAM's ReleaseLost, asked by the caller of
// Reconcile). Every other check of a round reads this host's own records.
//
// Why: those searches read keys of every host (every network record,
// every VNI, every pool), so every round on every host they grew with the
// cluster: at 100 simulated hosts they were a quarter of the create
// phase's store requests, and at 200 Consul timed out (docs/scaling.md). They
// look only for what an operation of this host cut short, and such an
// operation is killed with the plugin (the next start sweeps) or fails in
// this process, or it leaves its mess for the next network callback to
// finish: a ReleasePool killed before it was journaled is resent by
// dockerd after the restart, with an empty body, and forgotten once the
// DeleteNetwork that follows succeeds, which leaves the pool held. So a
// sweep runs at start, in the round after each network create or remove
// of this host (they are rare beside endpoint callbacks; the driver's
// CreateNetwork and DeleteNetwork call soon), again in each round after
// a round with an error (only a round without one ends a sweep: done),
// and otherwise every `every` (jittered, so hosts do not sweep
// together) as a backstop. every 0 sweeps every round, as before.
type sweepClock struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time // zero: due now
	gen   uint64    // counts soon, so a sweep that began before one does not end it
}

// due tells whether a sweep is due at now, with the token for done.
func (c *sweepClock) due(now time.Time) (bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !now.Before(c.next), c.gen
}

// done records a sweep, begun with token gen, that found and removed
// every leftover: the next is due after every, unless soon was called
// since the sweep began.
func (c *sweepClock) done(gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	jitter := time.Duration(0)
	if c.every > 0 {
		jitter = rand.N(c.every/2 + 1)
	}
	c.next = now.Add(c.every*3/4 + jitter)
}

// soon makes a sweep due at the next round: a network operation of this
// host ended, and may have left something behind.
func (c *sweepClock) soon() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.next = time.Time{}
}

// SweepDue tells whether a reconcile round starting now searches the
// cluster for this host's leftovers (sweepClock), so that the caller runs
// its own such search (the IPAM's ReleaseLost) in the same rounds; after
// a round in which Reconcile and that search succeeded it calls
// SweepDone with the token.
func (d *Driver) SweepDue() (bool, uint64) {
	return d.sweep.due(time.Now())
}

// SweepDone records a successful sweep begun with token.
func (d *Driver) SweepDone(token uint64) {
	d.sweep.done(token, time.Now())
}

// sweepSoon makes a sweep due at the next round: deferred by the network
// callbacks, whose end, success or failure, may leave records of a kill
// or a failed rollback for the sweep (sweepClock).
func (d *Driver) sweepSoon() {
	d.sweep.soon()
}

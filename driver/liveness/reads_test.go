package liveness

import (
	"testing"
	"time"
)

// However many hosts heartbeat, a monitor reads the heartbeats at most
// once per readEvery (DeadAfter/5, 120 ms here), not once per
// Interval/2 (50 ms): with every host's key moving all the time, each
// read returns at once, and at 200 hosts these reads were the largest
// share of the store's requests (docs/scaling.md).
func TestHeartbeatReadsPaced(t *testing.T) {
	s, c := openBolt(t), newClock()
	w := newWorld("h2", "h3", "h4")
	m := &counting{Store: s}
	start(t, m, c, "h1", w, 0)
	for _, h := range []string{"h2", "h3", "h4"} {
		start(t, s, c, h, nil, 0)
	}
	waitFor(t, "the others counted alive", w.hasCounts(Counts{Alive: 3}))
	o := Options{Interval: testInterval, DeadAfter: testDeadAfter}
	const window = 1200 * time.Millisecond
	before, began := m.ok.Load(), time.Now()
	time.Sleep(window)
	reads, took := m.ok.Load()-before, time.Since(began)
	most := uint64(took/o.readEvery(false)) + 1
	t.Logf("%d reads of the heartbeats in %s (at most %d at one per %s)", reads, took.Round(time.Millisecond), most, o.readEvery(false))
	if reads > most {
		t.Errorf("%d reads of the heartbeats in %s; want at most %d (one per %s)", reads, took.Round(time.Millisecond), most, o.readEvery(false))
	}
	if reads == 0 {
		t.Error("no read of the heartbeats in the window")
	}
}

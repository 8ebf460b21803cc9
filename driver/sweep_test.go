package driver

import (
	"testing"
	"time"
)

// The sweep clock: due at start; after a sweep, not before 3/4 of the
// period and by 5/4 of it; due again at once after a failure (soon), and
// a sweep that began before the failure does not end that.
func TestSweepClock(t *testing.T) {
	t0 := time.Now()
	c := sweepClock{every: time.Minute}
	due, gen := c.due(t0)
	if !due {
		t.Fatal("not due at start")
	}
	c.done(gen, t0)
	if due, _ := c.due(t0.Add(44 * time.Second)); due {
		t.Error("due 44 s after a sweep of a 1-minute period")
	}
	if due, _ := c.due(t0.Add(76 * time.Second)); !due {
		t.Error("not due 76 s after a sweep of a 1-minute period")
	}
	c.done(gen, t0)
	_, gen = c.due(t0)
	c.soon() // a create fails while the sweep runs
	c.done(gen, t0)
	if due, _ := c.due(t0.Add(time.Second)); !due {
		t.Error("a sweep begun before a failed create postponed the sweep the failure asked for")
	}
	every := sweepClock{}
	_, gen = every.due(t0)
	every.done(gen, t0)
	if due, _ := every.due(t0); !due {
		t.Error("with no period, not due every round")
	}
}

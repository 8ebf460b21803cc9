package driver

import (
	"testing"
	"time"
)

// The log rounds follow the cluster: under continuous changes, a host of
// a 10-host cluster makes rounds tens of milliseconds apart, one of a
// 200-host cluster no more than one per 500 ms (change 14's pace), and a
// slow Consul stretches them. Counted under a fake clock: the watch
// returns at once (something always moved) and each round takes took.
func TestLogPace(t *testing.T) {
	const window = 10 * time.Second
	for _, c := range []struct {
		name        string
		members     int
		took        time.Duration
		moved       bool
		least, most int
	}{
		// One round per 50 ms (10 hosts × 5 ms): an add reaches every
		// member within about 50 ms, not half a second.
		{"10 hosts", 10, 4 * time.Millisecond, true, 200, 200},
		{"3 hosts", 3, 2 * time.Millisecond, true, 600, 667},
		// 200 × 5 ms: half change 14's 20 rounds in 10 s.
		{"200 hosts", 200, 100 * time.Millisecond, true, 10, 10},
		{"100 hosts", 100, 50 * time.Millisecond, true, 20, 20},
		// A slow Consul: rounds at least twice their own time apart.
		{"10 hosts, slow store", 10, 400 * time.Millisecond, true, 12, 13},
		// Woken by other networks' changes alone: change 14's pace.
		{"nothing of its own moved", 3, 2 * time.Millisecond, false, 20, 20},
		{"bounded", 2000, time.Millisecond, true, 5, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			var (
				p      logPace
				now    time.Time
				rounds int
			)
			end := now.Add(window)
			for {
				start := now
				if next := p.next(); next.After(start) {
					start = next
				}
				if !start.Before(end) {
					break
				}
				rounds++
				now = start.Add(c.took)
				p.done(start, now, c.moved, c.members)
			}
			t.Logf("%d rounds in %v", rounds, window)
			if rounds < c.least || rounds > c.most {
				t.Errorf("%d rounds in %v with %d hosts, rounds of %v; want %d to %d", rounds, window, c.members, c.took, c.least, c.most)
			}
		})
	}
}

// A change after a quiet spell is followed at once: the gap counts from
// the last round's start, and the watch blocked longer than that.
func TestLogPaceAfterQuiet(t *testing.T) {
	var p logPace
	start := time.Unix(1000, 0)
	p.done(start, start.Add(10*time.Millisecond), true, 200)
	woken := start.Add(3 * time.Second) // the watch returned
	if next := p.next(); next.After(woken) {
		t.Errorf("next round at %v after a 3 s quiet spell; want at once", next.Sub(start))
	}
}

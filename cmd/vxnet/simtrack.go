package main

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vxnet/vxnet/driver/dataplane"
)

// tracker records, for each simulated endpoint, when its record was
// written and when each other host of its network first programmed it.
type tracker struct {
	mu      sync.Mutex
	written map[netip.Addr]time.Time         // endpoint address → record written
	owner   map[netip.Addr]int               // endpoint address → its host
	members map[netip.Addr][]int             // endpoint address → other hosts of its network
	seen    map[int]map[netip.Addr]time.Time // host → address → first programmed
}

func newTracker() *tracker {
	return &tracker{written: map[netip.Addr]time.Time{}, owner: map[netip.Addr]int{}, members: map[netip.Addr][]int{}, seen: map[int]map[netip.Addr]time.Time{}}
}

// programmed is the data planes' observer: host programmed peers at at.
func (t *tracker) programmed(host int, peers []dataplane.Peer, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.seen[host]
	if m == nil {
		m = map[netip.Addr]time.Time{}
		t.seen[host] = m
	}
	for _, p := range peers {
		if _, ok := m[p.IP]; !ok {
			m[p.IP] = at
		}
	}
}

// added records an endpoint written at at by owner, which others must
// program.
func (t *tracker) added(a netip.Addr, owner int, others []int, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.written[a], t.owner[a], t.members[a] = at, owner, others
}

// lags returns, per endpoint, the time until the last other host of its
// network programmed it, and how many (endpoint, host) pairs are missing.
func (t *tracker) lags() (lags []float64, missing int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a, w := range t.written {
		worst, ok := time.Duration(0), true
		for _, h := range t.members[a] {
			at, seen := t.seen[h][a]
			if !seen {
				missing++
				ok = false
				continue
			}
			worst = max(worst, at.Sub(w))
		}
		if ok {
			lags = append(lags, worst.Seconds()*1000)
		}
	}
	slices.Sort(lags)
	return lags, missing
}

package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// callCounts counts store calls by call and key kind ("cas pool",
// "get network", "list networks/"), and of those the ones that lost a
// compare-and-set ("conflict"): where a phase's requests go, and which
// keys the hosts contend on.
type callCounts struct {
	mu        sync.Mutex
	calls     map[string]int64
	conflicts map[string]int64
}

// callKind names a call on key: its kind (keys.Kind), or for a prefix
// or a key of no kind its first segment with a slash.
func callKind(op, key string) string {
	if k := keys.Kind(key); k != "" {
		return op + " " + k
	}
	return op + " " + strings.SplitN(key, "/", 2)[0] + "/"
}

// add counts one call of op on key that ended with err.
func (c *callCounts) add(op, key string, err error) {
	kind := callKind(op, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls, c.conflicts = map[string]int64{}, map[string]int64{}
	}
	c.calls[kind]++
	if errors.Is(err, store.ErrConflict) {
		c.conflicts[kind]++
	}
}

// copies returns the calls and conflicts counted so far.
func (c *callCounts) copies() (calls, conflicts map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls), maps.Clone(c.conflicts)
}

// diff returns now minus before, without the zero entries.
func diff(now, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range now {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// countPhase starts counting a phase's store calls; the function it
// returns, deferred, stores them by call and key kind in calls, the lost
// compare-and-sets in conflicts and the simulator's CPU (cores) in cpu,
// also when the phase fails.
func (s *sim) countPhase(calls, conflicts *map[string]int64, cpu *float64) func() {
	calls0, conflicts0 := s.counts.calls.copies()
	cpu0, t0 := cpuTime(), time.Now()
	return func() {
		now, lost := s.counts.calls.copies()
		*calls, *conflicts = diff(now, calls0), diff(lost, conflicts0)
		*cpu = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	}
}

// topCalls is the n most frequent calls of counts, most first, as
// "get network 99784, …"; lost compare-and-sets follow in parentheses.
func topCalls(counts, conflicts map[string]int64, n int) string {
	kinds := slices.Collect(maps.Keys(counts))
	slices.SortFunc(kinds, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range kinds[:min(n, len(kinds))] {
		p := fmt.Sprintf("%s %d", k, counts[k])
		if l := conflicts[k]; l > 0 {
			p += fmt.Sprintf(" (%d lost)", l)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

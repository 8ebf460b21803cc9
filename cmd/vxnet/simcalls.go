package main

import (
	"errors"
	"maps"
	"strings"
	"sync"

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

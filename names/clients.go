package names

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Clients maps the source address of a query (a local container's
// docker_gwbridge address, or one of its vxnet addresses) to the cluster
// keys of the vxnet networks that container is on. The Syncer replaces the
// whole map at each pass. A source in one of the watched subnets
// (docker_gwbridge's) that is not known yet asks for a refresh and waits
// until a pass that started after it asked is done, once per pass: a
// container that started a moment ago is answered, while a stranger costs
// no Docker API call per query. Sources outside the watched subnets
// (default-bridge containers, which query the server directly) never wait.
type Clients struct {
	refresh func() // asks for a refresh; must not block
	wait    time.Duration

	mu        sync.Mutex
	byAddr    map[netip.Addr][]string
	watch     []netip.Prefix
	missed    map[netip.Addr]bool // unknown sources that waited since the last Replace
	passStart time.Time           // when the pass of the last Replace started
	changed   chan struct{}       // closed by the next Replace
}

// NewClients returns an empty map; refresh is called (it must not block)
// when a watched source is unknown, and the query waits up to wait for a
// fresh pass.
func NewClients(refresh func(), wait time.Duration) *Clients {
	return &Clients{refresh: refresh, wait: wait, byAddr: map[netip.Addr][]string{}, missed: map[netip.Addr]bool{}, changed: make(chan struct{})}
}

// Replace sets the map and the watched subnets found by a pass that
// started at passStart, and wakes waiting queries.
func (c *Clients) Replace(byAddr map[netip.Addr][]string, watch []netip.Prefix, passStart time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byAddr, c.watch, c.passStart = byAddr, watch, passStart
	clear(c.missed)
	close(c.changed)
	c.changed = make(chan struct{})
}

// Networks returns the networks of the container querying from a (nil: not
// a known container on a vxnet network).
func (c *Clients) Networks(ctx context.Context, a netip.Addr) []string {
	a = a.Unmap()
	asked := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if nets, ok := c.byAddr[a]; ok {
		return nets
	}
	watched := slices.ContainsFunc(c.watch, func(p netip.Prefix) bool { return p.Contains(a) })
	if !watched || c.missed[a] {
		return nil
	}
	c.refresh()
	t := time.NewTimer(c.wait)
	defer t.Stop()
	for {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if nets, ok := c.byAddr[a]; ok || ch == c.changed || !c.passStart.Before(asked) {
			// known, out of time, or a pass started after the query
			// did not find it: a stranger until the next pass
			c.missed[a] = true
			return nets
		}
	}
}

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
// for it, once per refresh: a container that started a moment ago is
// answered, while a stranger costs no Docker API call per query. Sources
// outside the watched subnets (default-bridge containers, which query the
// server directly) never wait.
type Clients struct {
	refresh func() // asks for a refresh; must not block
	wait    time.Duration

	mu      sync.Mutex
	byAddr  map[netip.Addr][]string
	watch   []netip.Prefix
	missed  map[netip.Addr]bool // unknown sources that waited since the last Replace
	changed chan struct{}       // closed by the next Replace
}

// NewClients returns an empty map; refresh is called (it must not block)
// when a watched source is unknown, and the query waits up to wait for the
// next Replace.
func NewClients(refresh func(), wait time.Duration) *Clients {
	return &Clients{refresh: refresh, wait: wait, byAddr: map[netip.Addr][]string{}, missed: map[netip.Addr]bool{}, changed: make(chan struct{})}
}

// Replace sets the map and the watched subnets, and wakes waiting queries.
func (c *Clients) Replace(byAddr map[netip.Addr][]string, watch []netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byAddr, c.watch = byAddr, watch
	clear(c.missed)
	close(c.changed)
	c.changed = make(chan struct{})
}

// Networks returns the networks of the container querying from a (nil: not
// a known container on a vxnet network).
func (c *Clients) Networks(ctx context.Context, a netip.Addr) []string {
	a = a.Unmap()
	c.mu.Lock()
	if nets, ok := c.byAddr[a]; ok {
		c.mu.Unlock()
		return nets
	}
	watched := slices.ContainsFunc(c.watch, func(p netip.Prefix) bool { return p.Contains(a) })
	if !watched || c.missed[a] {
		c.mu.Unlock()
		return nil
	}
	c.missed[a] = true
	ch := c.changed
	c.mu.Unlock()
	c.refresh()
	t := time.NewTimer(c.wait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byAddr[a]
}

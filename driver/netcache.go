package driver

import (
	"context"
	"maps"
	"sync"

	"github.com/vxnet/vxnet/store"
)

// netCache holds, by this host's Docker network ID, the cluster network
// record lookup last read, so the endpoint callbacks of a container
// (CreateEndpoint, Join, Leave, DeleteEndpoint) do not each read this
// host's reference and the cluster record again.
//
// Why: those two reads were 8 of a container's store round trips, on the
// critical path of `docker run` (issue #13), and they answer the same
// thing each time. The fields the endpoint callbacks use (Key, VNI,
// Subnets, Gateways, Options) never change while this host is a member:
// a host joining must match them (compatible), and only membership
// (Hosts) changes. Membership of this host ends only through leave or
// reconcileLocked (a cluster record gone, a reference Docker dropped),
// which both run with mu held alone and drop the entries they touch; the
// endpoint callbacks fill the cache holding mu shared, so no callback
// sees an entry of a network that was left meanwhile. A change from
// outside (`vxnet host forget` of this live host, a record deleted by
// hand) is answered from the cache only until the next Reconcile: its
// check (inSync) finds the network gone or changed and repairs with mu
// held alone. Cached records are shared: read them, do not change them.
//
// records and ownRecords are caches for reconcile: the cluster network
// records and this host's endpoint records it reads every round, by
// store key, read again only when their store index moved (store.Cache;
// reconcile_shared.go, orphan.go).
type netCache struct {
	mu sync.Mutex
	m  map[string]*Network

	records    store.Cache[Network]
	ownRecords store.Cache[present] // this host's endpoints' cluster records
	copies     copyCache            // this host's endpoint copies (copies.go)
	round      *store.Round         // reconcile's check's last round of reads
}

// beginRound begins a round of reconcile's check's reads of this host's
// own records (store.Round): one request reads what the last round read;
// the calls made with the context it returns are answered from it and
// recorded for the next round.
//
// Why: those reads (this host's networks listed; their records, their
// pools, this host's endpoints' records and copies checked) were five
// requests or more every round, 5 s, on every host, however little had
// changed: at 200 simulated hosts a third of the store requests of the
// network creates (docs/scaling.md, change 16).
func (c *netCache) beginRound(ctx context.Context, s store.Store) context.Context {
	c.mu.Lock()
	prev := c.round
	c.mu.Unlock()
	r := store.NextRound(ctx, s, prev)
	c.mu.Lock()
	c.round = r
	c.mu.Unlock()
	return store.WithRound(ctx, r)
}

// get returns the cached network of Docker network dockerID.
func (c *netCache) get(dockerID string) (*Network, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[dockerID]
	return n, ok
}

// put caches n as the network of Docker network dockerID.
func (c *netCache) put(dockerID string, n *Network) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*Network{}
	}
	c.m[dockerID] = n
}

// drop forgets Docker network dockerID.
func (c *netCache) drop(dockerID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, dockerID)
}

// clear forgets every network.
func (c *netCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	maps.DeleteFunc(c.m, func(string, *Network) bool { return true })
}

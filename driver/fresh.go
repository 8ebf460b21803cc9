package driver

import (
	"context"
	"maps"
	"sync"

	"github.com/vxnet/vxnet/store/keys"
)

// maxFresh bounds freshEndpoints: endpoints created and neither joined
// nor deleted yet. Docker joins an endpoint right after creating it, so a
// few are pending at a time; past the bound (a Docker that never joins)
// new ones are not kept and their Join reads the store.
const maxFresh = 1024

// freshEndpoints holds, by endpoint ID, the record CreateEndpoint has just
// written, for that endpoint's Join.
//
// Why: Join's one store read was its cost that grew with the cluster's
// load (1.8 → 5.3 ms from 100 to 1000 endpoints on one host, issue #13),
// to read back what this process wrote a moment before. The fields Join
// uses (ID, network, MAC) never change in a record's life.
//
// No stale entry: an entry goes exactly when its endpoint's cluster
// record (what Join would read) goes, or may have. Join takes it out (a
// Join after a Leave reads the store). The paths of this process that
// delete this host's endpoint records drop theirs: DeleteEndpoint and
// every removal of one endpoint (removeEndpoint) its own; a network's
// leave (DeleteNetwork, a failed create, a network Docker removed without
// telling, one a killed create joined) and reconcile's forgetGone their
// network's. Records are also deleted from outside this process: `vxnet
// host forget` of this host run anywhere, or another host's forget of it
// after --forget-after, deletes its endpoint records and copies without
// telling it (a forget of another host, or the removal of a network by
// its last host, touches none of the records a member keeps). So each reconcile round checks the entries kept when it
// began against the store, in its one read of this host's records
// (inSync, checkFresh), and drops those whose cluster record is gone, or
// all of them when that read fails; a Join after a round that saw the
// purge fails, as its store read did
// (TestReconcileRepublishesOnlyLiveEndpoints). The others stay for
// their Join. A Join between a purge and the next round makes the veth,
// and that round republishes the endpoint as it does a running
// container's. A plugin restarted between CreateEndpoint and Join has no
// entry, and Join reads the store, as it does for an entry of another
// network. Records are shared: read them, do not change them.
type freshEndpoints struct {
	mu sync.Mutex
	m  map[string]*Endpoint
}

// put keeps ep for its Join, unless maxFresh are kept already.
func (f *freshEndpoints) put(ep *Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]*Endpoint{}
	}
	if len(f.m) < maxFresh {
		f.m[ep.ID] = ep
	}
}

// take returns and forgets the record kept for endpoint id.
func (f *freshEndpoints) take(id string) (*Endpoint, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ep, ok := f.m[id]
	delete(f.m, id)
	return ep, ok
}

// drop forgets endpoint id.
func (f *freshEndpoints) drop(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, id)
}

// dropNetwork forgets the endpoints of cluster network key.
func (f *freshEndpoints) dropNetwork(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, ep := range f.m {
		if ep.Network == key {
			delete(f.m, id)
		}
	}
}

// snapshot returns the endpoints kept now, by ID: those a reconcile
// round that begins now checks (keepFound).
func (f *freshEndpoints) snapshot() map[string]*Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.m)
}

// keepFound forgets, of the endpoints kept when a round began (kept),
// those whose cluster record the round did not find (found, by store
// key). An entry put since is left: its record may have been written
// after the round read.
func (f *freshEndpoints) keepFound(kept map[string]*Endpoint, found map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, ep := range kept {
		if f.m[id] == ep && !found[keys.Endpoint(ep.Network, ep.ID)] {
			delete(f.m, id)
		}
	}
}

// size is the number of endpoints kept.
func (f *freshEndpoints) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

// checkFresh drops the endpoints kept for a Join when the round began
// (kept) whose cluster record is gone from the store: one index check of
// those read before (the netCache's ownRecords, answered by the round's
// one read), a read of the others. A failed read drops them all: their
// Joins read the store.
func (d *Driver) checkFresh(ctx context.Context, kept map[string]*Endpoint) {
	if len(kept) == 0 {
		return
	}
	ks := make([]string, 0, len(kept))
	for _, ep := range kept {
		ks = append(ks, keys.Endpoint(ep.Network, ep.ID))
	}
	found := map[string]bool{}
	if got, err := d.nets.ownRecords.GetAll(ctx, d.o.Store, ks); err == nil {
		for k := range got {
			found[k] = true
		}
	}
	d.fresh.keepFound(kept, found)
}

package driver

import "sync"

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
// No stale entry: Join takes its entry out (a Join after a Leave reads
// the store); DeleteEndpoint drops it, a network's leave drops its
// network's, and every Reconcile round drops them all: other hosts purge
// the records of a host they found gone, and a Join after a round that
// saw the purge must fail, as its store read did
// (TestReconcileRepublishesOnlyLiveEndpoints). A Join between a purge and
// the next round makes the veth, and that round republishes the endpoint
// as it does a running container's. A plugin restarted between
// CreateEndpoint and Join has no entry, and Join reads the store, as it
// does for an entry of another network. Records are shared: read them,
// do not change them.
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

// clear forgets every endpoint.
func (f *freshEndpoints) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.m)
}

// size is the number of endpoints kept.
func (f *freshEndpoints) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

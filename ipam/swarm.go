package ipam

// global tells the swarm scope. The swarm manager is the allocator: its swarmkit
// allocator calls RequestPool, RequestAddress for the gateway and for
// every task on the manager's own vxnet, and ReleaseAddress/ReleasePool
// when tasks and the network go. Every node a task lands on then creates
// the network through libnetwork, which asks its own vxnet again, with
// what the manager allocated: RequestPool for the same subnet, the
// gateway, and RequestAddress with the task's address as the preferred
// one. After a leader change or a manager restart the allocator requests
// again everything it holds. (moby v20.10.24: swarmkit cnmallocator
// allocatePools/allocateNetworkIPs; libnetwork network.ipamAllocateVersion,
// endpoint.assignAddressVersion.)
//
// So in global scope:
//   - a host that already requested a pool may request it again (the
//     manager running tasks does, once for the allocator and once for its
//     own network); the extra requests are counted in Pool.Refs and the
//     host stays a user of the pool until it has released them all;
//   - a preferred address that is already leased is not a conflict: it is
//     the node confirming the manager's allocation, or the manager
//     re-requesting its own. The lease stays with the host that took it
//     first; the first ReleaseAddress drops it (releases are idempotent).
//
// Releases (ReleaseAddress) follow the same ownership: a node gives back
// the address of its task, which the manager leased; so in global scope
// any user of the pool (Pool.uses) may release a lease, still with a CAS
// on the index it read. A host that is not a user of the pool (it never
// requested it, or was forgotten) cannot.
//
// The price: in global scope a static address (--ip) is not refused when
// leased. Swarm hands every address out through the manager, which does
// not pick a leased one for a new task.
func (m *IPAM) global() bool { return m.o.Scope.Swarm() }

// withRef returns a copy of p with host's extra request count moved by d.
func (p *Pool) withRef(host string, d int) *Pool {
	next := *p
	next.Refs = make(map[string]int, len(p.Refs)+1)
	for h, n := range p.Refs {
		next.Refs[h] = n
	}
	if n := next.Refs[host] + d; n > 0 {
		next.Refs[host] = n
	} else {
		delete(next.Refs, host)
	}
	if len(next.Refs) == 0 {
		next.Refs = nil
	}
	return &next
}

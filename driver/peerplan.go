package driver

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/store"
)

// peerPlan is a peer watcher's resolved endpoint records (decodedPeers'
// work), kept from one listing to the next so that a change costs the
// records it changed, not the size of the network; and the peer list the
// kernel was last given, so that a change that leaves it as it was
// programs nothing.
//
// Why: on each change of a network the watcher parsed every record,
// sorted them all and rebuilt the conflict maps (1.8 ms of CPU per change
// at 1000 endpoints, 0.2 ms at 100: O(N²) over the bench's Scale step,
// paid by the Joins beside it), then gave the data plane the whole list
// (nftables and netlink reads under the data plane's lock), although an
// endpoint of this host, the whole of that step, is no peer entry at all
// (issue #13).
//
// The fast path: records added after every record of the plan in write
// order (a new write has the highest index) are resolved against the
// plan's maps alone, as resolvePeers would take them last; records
// removed are taken out of it unless another record's fate depended on
// them (the earlier side of a conflict, or sharing an address or MAC with
// another kept record). Anything else, and every change in swarm scope
// (newest first: a new record comes first), resolves the whole listing
// again, as resolvePeers does. TestPeerPlanMatchesFullResolution checks
// both give the same peers and conflicts.
type peerPlan struct {
	newestFirst bool
	ready       bool
	recs        map[string]*plannedRecord // the listing's records by key
	kept        []*peerRecord             // in write order
	byIP        map[netip.Addr]*peerRecord
	byMAC       map[string]*peerRecord
	ipN         map[netip.Addr]int // kept records holding each address
	macN        map[string]int     // and each MAC
	conflicts   []peerConflict
	// last is the record placed last in write order; removed since, it
	// still bounds the plan's records (no one comes after it).
	last     *plannedRecord
	gen      uint64 // listings applied: stamps the records seen
	resolved int    // whole resolutions, for tests
	// sent is the list SetPeers last took, when sentOK.
	sent   []dataplane.Peer
	sentOK bool
}

// plannedRecord is one record of the listing at its store index: usable
// as kernel entries (rec), or not (skip, why).
type plannedRecord struct {
	index uint64
	rec   *peerRecord
	kept  bool // resolved and kept (else dropped for a conflict, or unusable)
	skip  error
	seen  uint64 // the listing that last had it (peerPlan.gen)
}

func newPeerPlan(newestFirst bool) *peerPlan {
	return &peerPlan{newestFirst: newestFirst, recs: map[string]*plannedRecord{}}
}

// setPeers programs the peers of the watcher's listing live (gone hosts
// left out). A fresh listing whose peers are those the kernel was last
// given programs nothing: the resync (fresh false) and a change of the
// gone hosts always do, so entries deleted behind vxnet's back still come
// back within resyncEvery.
func (d *Driver) setPeers(w *watcher, live []store.KV, fresh bool) error {
	if w.plan == nil {
		w.plan = newPeerPlan(d.o.Scope.Swarm())
	}
	p := w.plan
	p.update(live, w.recs)
	peers := d.planPeers(p, w.logged)
	if fresh && p.sentOK && slices.EqualFunc(p.sent, peers, samePeer) {
		return nil
	}
	p.sentOK = false
	if err := d.o.Plane.SetPeers(w.vni, peers); err != nil {
		return err
	}
	p.sent, p.sentOK = peers, true
	return nil
}

func samePeer(a, b dataplane.Peer) bool {
	return a.IP == b.IP && string(a.MAC) == string(b.MAC) && a.VTEP.Equal(b.VTEP)
}

// planPeers is decodedPeers from the plan: the kept records of other
// hosts as kernel entries; problems are logged once while they last
// (logged is updated).
func (d *Driver) planPeers(p *peerPlan, logged map[string]bool) []dataplane.Peer {
	now := map[string]bool{}
	for key, r := range p.recs {
		if r.skip == nil {
			continue
		}
		if !logged["skip "+key] {
			d.o.Log.WithError(r.skip).WithField("key", key).Warn("skipping unusable endpoint record")
		}
		now["skip "+key] = true
	}
	for _, c := range p.conflicts {
		if !logged[c.key()] {
			d.logConflict(c)
		}
		now[c.key()] = true
	}
	clear(logged)
	for k := range now {
		logged[k] = true
	}
	var out []dataplane.Peer
	for _, r := range p.kept {
		if r.ep.Host == d.o.HostID || r.vtep == d.o.VTEP.Unmap() {
			continue
		}
		for _, ip := range r.ips {
			out = append(out, dataplane.Peer{IP: ip, MAC: r.mac, VTEP: r.vtep.AsSlice()})
		}
	}
	return out
}

// update brings the plan to listing kvs.
func (p *peerPlan) update(kvs []store.KV, cache *recordCache) {
	p.gen++
	full := !p.ready || p.newestFirst
	var added []*plannedRecord
	drop := func(r *plannedRecord) {
		if !p.remove(r) {
			full = true
		}
	}
	for _, kv := range kvs {
		cur, ok := p.recs[kv.Key]
		if ok && cur.index == kv.ModifyIndex && kv.ModifyIndex != 0 {
			cur.seen = p.gen
			continue
		}
		if ok {
			drop(cur)
		}
		r := p.parse(kv, cache)
		p.recs[kv.Key] = r
		if r.rec != nil {
			added = append(added, r)
		}
	}
	for key, r := range p.recs {
		if r.seen != p.gen {
			drop(r)
			delete(p.recs, key)
		}
	}
	if full {
		p.resolve()
		return
	}
	slices.SortFunc(added, p.order)
	if len(added) > 0 && p.last != nil && p.order(added[0], p.last) <= 0 {
		p.resolve() // an added record goes before one the plan holds
		return
	}
	for _, r := range added {
		p.take(r)
	}
}

// parse makes kv a planned record (peerRecords' checks).
func (p *peerPlan) parse(kv store.KV, cache *recordCache) *plannedRecord {
	r := &plannedRecord{index: kv.ModifyIndex, seen: p.gen}
	recs := peerRecords([]store.KV{kv}, cache, func(_ string, err error) { r.skip = err })
	if len(recs) == 1 {
		r.rec = recs[0]
	}
	return r
}

// take resolves r, which comes after every record of the plan in write
// order: kept unless it contradicts a kept record (resolvePeers' loop).
func (p *peerPlan) take(pr *plannedRecord) {
	p.last = pr
	r := pr.rec
	if c, ok := contradiction(r, p.byIP, p.byMAC); ok {
		p.conflicts = append(p.conflicts, c)
		return
	}
	pr.kept = true
	p.kept = append(p.kept, r)
	p.byMAC[r.mac.String()] = r
	p.macN[r.mac.String()]++
	for _, ip := range r.ips {
		p.byIP[ip] = r
		p.ipN[ip]++
	}
}

// remove takes a record that left the listing out of the plan, and
// reports false when the plan must be resolved again: another record's
// fate depended on it.
func (p *peerPlan) remove(pr *plannedRecord) bool {
	r := pr.rec
	if r == nil || !p.ready {
		return true
	}
	if !pr.kept {
		p.conflicts = slices.DeleteFunc(p.conflicts, func(c peerConflict) bool { return c.dropped == r })
		return true
	}
	mac := r.mac.String()
	if p.macN[mac] > 1 || slices.ContainsFunc(p.conflicts, func(c peerConflict) bool { return c.kept == r }) {
		return false
	}
	for _, ip := range r.ips {
		if p.ipN[ip] > 1 {
			return false
		}
	}
	p.kept = slices.DeleteFunc(p.kept, func(k *peerRecord) bool { return k == r })
	delete(p.byMAC, mac)
	delete(p.macN, mac)
	for _, ip := range r.ips {
		delete(p.byIP, ip)
		delete(p.ipN, ip)
	}
	return true
}

// resolve resolves every record of the plan again (resolvePeers).
func (p *peerPlan) resolve() {
	p.resolved++
	p.ready = true
	p.kept, p.conflicts, p.last = nil, nil, nil
	p.byIP, p.byMAC = map[netip.Addr]*peerRecord{}, map[string]*peerRecord{}
	p.ipN, p.macN = map[netip.Addr]int{}, map[string]int{}
	all := make([]*plannedRecord, 0, len(p.recs))
	for _, r := range p.recs {
		r.kept = false
		if r.rec != nil {
			all = append(all, r)
		}
	}
	slices.SortFunc(all, p.order)
	for _, r := range all {
		p.take(r)
	}
}

// order is resolvePeers' write order.
func (p *peerPlan) order(a, b *plannedRecord) int {
	if p.newestFirst {
		a, b = b, a
	}
	return cmp.Or(cmp.Compare(a.rec.index, b.rec.index), cmp.Compare(a.rec.ep.ID, b.rec.ep.ID))
}

package driver

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vxnet/vxnet/store"
)

// peerRecord is one endpoint record usable as kernel entries.
type peerRecord struct {
	ep    Endpoint
	index uint64
	mac   net.HardwareAddr
	vtep  netip.Addr
	ips   []netip.Addr
}

// peerConflict is a record dropped in favour of an earlier one.
type peerConflict struct {
	kept, dropped *peerRecord
	why           string
}

// key identifies the conflict for logging it once.
func (c peerConflict) key() string {
	return c.kept.ep.ID + "/" + c.dropped.ep.ID + "/" + c.why
}

// peerRecords decodes the records that can become kernel entries: a
// 6-byte unicast MAC, a VTEP and valid addresses. skip reports the others.
func peerRecords(kvs []store.KV, cache *recordCache, skip func(key string, err error)) []*peerRecord {
	var out []*peerRecord
	for _, kv := range kvs {
		ep, err := cache.decode(kv)
		if err != nil {
			skip(kv.Key, err)
			continue
		}
		mac, err := net.ParseMAC(ep.MAC)
		if err != nil || len(mac) != 6 {
			skip(kv.Key, fmt.Errorf("MAC %q is not a 6-byte MAC", ep.MAC))
			continue
		}
		vtep := ep.VTEP.Unmap()
		if !vtep.IsValid() || vtep.IsUnspecified() {
			skip(kv.Key, fmt.Errorf("VTEP %q is not an address", ep.VTEP))
			continue
		}
		r := &peerRecord{ep: ep, index: kv.ModifyIndex, mac: mac, vtep: vtep}
		for _, a := range ep.Addrs {
			ip := a.Addr().Unmap()
			if !ip.IsValid() || ip.IsUnspecified() {
				continue
			}
			r.ips = append(r.ips, ip)
		}
		out = append(out, r)
	}
	return out
}

// resolvePeers returns the records that can be programmed together, in
// write order (newest first if newestFirst), and the conflicts that
// dropped the others.
//
// Why: The kernel holds one MAC per neighbour
// address and one VTEP per MAC, and the data plane refuses a peer list
// that asks for more, so one bad pair of records (the same MAC on two
// hosts, a swarm static address accepted twice, records from before the
// MAC keys) would stop every peer update of the network. Instead every
// host drops the same records: records are taken in the order they were
// written (ModifyIndex, then endpoint ID), and a record that contradicts
// one taken before it is dropped whole. The store's indexes are the same
// for every reader, so every host keeps the same set. In global scope
// (swarm) the newest record is taken first: the manager owns the
// addresses, and an address it gives to a task on another node takes over
// from an older record, such as a silent host's.
func resolvePeers(recs []*peerRecord, newestFirst bool) ([]*peerRecord, []peerConflict) {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b *peerRecord) int {
		if newestFirst {
			a, b = b, a
		}
		return cmp.Or(cmp.Compare(a.index, b.index), cmp.Compare(a.ep.ID, b.ep.ID))
	})
	byIP := map[netip.Addr]*peerRecord{}
	byMAC := map[string]*peerRecord{}
	var kept []*peerRecord
	var conflicts []peerConflict
	for _, r := range recs {
		if c, ok := contradiction(r, byIP, byMAC); ok {
			conflicts = append(conflicts, c)
			continue
		}
		kept = append(kept, r)
		byMAC[r.mac.String()] = r
		for _, ip := range r.ips {
			byIP[ip] = r
		}
	}
	return kept, conflicts
}

// contradiction finds a record taken before r that r contradicts: one of
// r's addresses with another MAC, or r's MAC behind another VTEP.
func contradiction(r *peerRecord, byIP map[netip.Addr]*peerRecord, byMAC map[string]*peerRecord) (peerConflict, bool) {
	if o, ok := byMAC[r.mac.String()]; ok && o.vtep != r.vtep {
		return peerConflict{kept: o, dropped: r, why: "MAC " + r.mac.String() + " behind two VTEPs"}, true
	}
	for _, ip := range r.ips {
		if o, ok := byIP[ip]; ok && o.mac.String() != r.mac.String() {
			return peerConflict{kept: o, dropped: r, why: "address " + ip.String() + " with two MACs"}, true
		}
	}
	return peerConflict{}, false
}

package driver

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/internal/pause"
	"github.com/vxnet/vxnet/store"
)

// resyncEvery bounds how long kernel peer entries can drift from the store
// (entries deleted behind vxnet's back) when no endpoint changes.
const resyncEvery = 5 * time.Second

// watcher is the goroutine programming one network's peers. It keeps the
// last listing it read, so a change of the gone hosts reprograms the
// network at once, also while the store is unreachable.
type watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
	key    string
	vni    uint32

	mu    sync.Mutex
	kvs   []store.KV              // last endpoint listing read
	recs  *recordCache            // kvs decoded
	read  bool                    // kvs holds a listing
	vteps map[string][]netip.Addr // other hosts of kvs → their VTEPs
	// logged holds the record problems reported already (see peers).
	logged map[string]bool
	// lagged holds the endpoints whose propagation was observed, or that
	// were there at the first listing (primed), which says nothing of lag.
	lagged map[string]bool
	primed bool
	plan   *peerPlan // the peers resolved and programmed (peerplan.go)
	// members is the number of hosts of the network's record as last
	// given to startWatch (logpace.go).
	members atomic.Int32
}

// startWatch starts the peer goroutine of n unless it runs already. It
// converges the network namespace's FDB and neighbour entries to the
// store's endpoint records of other hosts: one goroutine per network, so
// updates apply in order; a restart replays the same path from a full list.
// A running one takes n's hosts (reconcile gives it the record each round).
func (d *Driver) startWatch(n *Network) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if w, ok := d.watchers[n.Key]; ok {
		w.setMembers(n)
		return
	}
	ctx, cancel := context.WithCancel(d.life)
	w := &watcher{cancel: cancel, done: make(chan struct{}), key: n.Key, vni: n.VNI, recs: newRecordCache(), logged: map[string]bool{}, lagged: map[string]bool{}}
	w.setMembers(n)
	d.watchers[n.Key] = w
	go func() {
		defer close(w.done)
		d.watchPeers(ctx, n.Key, w)
	}()
}

// stopWatch stops the peer goroutine of a network and waits for it.
func (d *Driver) stopWatch(key string) {
	d.wmu.Lock()
	w, ok := d.watchers[key]
	delete(d.watchers, key)
	d.wmu.Unlock()
	if ok {
		w.cancel()
		<-w.done
		d.dropNames(key)
	}
}

// StopWatches stops every peer goroutine (at shutdown).
func (d *Driver) StopWatches() {
	d.wmu.Lock()
	keys := make([]string, 0, len(d.watchers))
	for k := range d.watchers {
		keys = append(keys, k)
	}
	d.wmu.Unlock()
	for _, k := range keys {
		d.stopWatch(k)
	}
}

func (d *Driver) watchPeers(ctx context.Context, key string, w *watcher) {
	log := d.o.Log.WithFields(map[string]any{"network": key, "vni": w.vni})
	resync := time.NewTicker(resyncEvery)
	defer resync.Stop()
	d.followLog(key)
	defer d.unfollowLog(key)
	lists := make(chan listing, 1)
	go d.follow(ctx, key, listing{}, lists)
	failing := false
	for {
		var l listing
		select {
		case <-ctx.Done():
			return
		case <-resync.C:
			// The kernel converges to the last listing: entries deleted
			// behind vxnet's back come back without a store read.
			if err := d.program(w, nil, false); err != nil && !failing {
				log.WithError(err).Warn("peer resync failed; retrying")
			}
			continue
		case l = <-lists:
		}
		err := l.err
		if err == nil {
			err = d.program(w, l.kvs, true)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Keep the kernel as it is: a store outage must not cut
			// traffic between running containers.
			if !failing {
				log.WithError(err).Warn("peer update failed; keeping current entries and retrying")
			}
			failing = true
			pause.For(ctx, time.Second)
			go d.follow(ctx, key, listing{}, lists)
			continue
		}
		if failing {
			log.Info("peer updates work again")
		}
		failing = false
		go d.follow(ctx, key, l, lists)
	}
}

// program converges the kernel to a fresh listing kvs of the watcher's
// network (or to the last listing, after the gone hosts changed), leaving
// out the endpoints of gone hosts.
func (d *Driver) program(w *watcher, kvs []store.KV, fresh bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fresh {
		w.recs.keep(kvs)
		w.kvs, w.read, w.vteps = kvs, true, d.vtepsOf(kvs, w.recs)
	}
	if !w.read {
		return nil
	}
	live := d.withoutGone(w.kvs, w.recs)
	d.feedNames(w.key, live, w.recs)
	if err := d.setPeers(w, live, fresh); err != nil {
		return err
	}
	if fresh {
		d.observeLag(w)
	}
	return nil
}

// observeLag tells ObserveLag of the other hosts' endpoints this watcher
// has just programmed for the first time, and forgets those gone.
func (d *Driver) observeLag(w *watcher) {
	if d.o.ObserveLag == nil {
		return
	}
	now := time.Now()
	live := make(map[string]bool, len(w.kvs))
	for _, kv := range w.kvs {
		ep, err := w.recs.decode(kv)
		if err != nil || ep.Host == d.o.HostID {
			continue
		}
		live[ep.ID] = true
		if w.lagged[ep.ID] || ep.Created.IsZero() {
			continue
		}
		w.lagged[ep.ID] = true
		if w.primed {
			d.o.ObserveLag(now.Sub(ep.Created))
		}
	}
	w.primed = true
	for id := range w.lagged {
		if !live[id] {
			delete(w.lagged, id)
		}
	}
}

// vtepsOf maps the other hosts of an endpoint listing to their VTEPs.
func (d *Driver) vtepsOf(kvs []store.KV, recs *recordCache) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, kv := range kvs {
		ep, err := recs.decode(kv)
		if err != nil || ep.Host == d.o.HostID || !ep.VTEP.IsValid() || slices.Contains(out[ep.Host], ep.VTEP) {
			continue
		}
		out[ep.Host] = append(out[ep.Host], ep.VTEP)
	}
	return out
}

// withoutGone drops the records of gone hosts from an endpoint listing.
func (d *Driver) withoutGone(kvs []store.KV, recs *recordCache) []store.KV {
	d.gmu.RLock()
	defer d.gmu.RUnlock()
	if len(d.gone) == 0 {
		return kvs
	}
	out := make([]store.KV, 0, len(kvs))
	for _, kv := range kvs {
		if ep, err := recs.decode(kv); err == nil && d.gone[ep.Host] {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// VTEPs returns the underlay addresses of every other host with endpoints
// on this host's networks (liveness.Peers): the addresses to probe when a
// host falls silent.
func (d *Driver) VTEPs() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, w := range d.watching() {
		w.mu.Lock()
		for h, vs := range w.vteps {
			for _, v := range vs {
				if !slices.Contains(out[h], v) {
					out[h] = append(out[h], v)
				}
			}
		}
		w.mu.Unlock()
	}
	return out
}

// SetGone sets the hosts whose entries are left out of the kernel
// (liveness.Peers) and reprograms every network at once.
func (d *Driver) SetGone(gone map[string]bool) {
	d.gmu.Lock()
	d.gone = gone
	d.gmu.Unlock()
	for _, w := range d.watching() {
		if err := d.program(w, nil, false); err != nil {
			d.o.Log.WithError(err).WithField("vni", w.vni).Warn("reprogramming peers after a host's liveness changed failed; the watcher retries")
		}
	}
}

// watching lists the running peer goroutines.
func (d *Driver) watching() []*watcher {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	out := make([]*watcher, 0, len(d.watchers))
	for _, w := range d.watchers {
		out = append(out, w)
	}
	return out
}

// peers are the other hosts' endpoints as kernel entries, without the
// records that conflict with earlier ones (see resolvePeers), so the list
// always passes the data plane's checks. Problems are logged once while
// they last: logged holds those reported, and is updated.
func (d *Driver) peers(kvs []store.KV, logged map[string]bool) []dataplane.Peer {
	return d.decodedPeers(kvs, logged, nil)
}

// decodedPeers is peers, decoding through cache.
func (d *Driver) decodedPeers(kvs []store.KV, logged map[string]bool, cache *recordCache) []dataplane.Peer {
	now := map[string]bool{}
	recs := peerRecords(kvs, cache, func(key string, err error) {
		if !logged["skip "+key] {
			d.o.Log.WithError(err).WithField("key", key).Warn("skipping unusable endpoint record")
		}
		now["skip "+key] = true
	})
	kept, conflicts := resolvePeers(recs, d.o.Scope.Swarm())
	for _, c := range conflicts {
		if !logged[c.key()] {
			d.logConflict(c)
		}
		now[c.key()] = true
	}
	clear(logged)
	maps.Copy(logged, now)
	var out []dataplane.Peer
	for _, r := range kept {
		if r.ep.Host == d.o.HostID || r.vtep == d.o.VTEP.Unmap() {
			continue
		}
		for _, ip := range r.ips {
			out = append(out, dataplane.Peer{IP: ip, MAC: r.mac, VTEP: net.IP(r.vtep.AsSlice())})
		}
	}
	return out
}

func (d *Driver) logConflict(c peerConflict) {
	d.o.Log.WithFields(map[string]any{
		"network": c.kept.ep.Network, "conflict": c.why,
		"kept":    fmt.Sprintf("endpoint %s host %s vtep %s mac %s addrs %v (index %d)", c.kept.ep.ID, c.kept.ep.Host, c.kept.vtep, c.kept.mac, c.kept.ep.Addrs, c.kept.index),
		"dropped": fmt.Sprintf("endpoint %s host %s vtep %s mac %s addrs %v (index %d)", c.dropped.ep.ID, c.dropped.ep.Host, c.dropped.vtep, c.dropped.mac, c.dropped.ep.Addrs, c.dropped.index),
	}).Error("conflicting endpoint records: programming the earlier one, dropping the later one on every host")
}

package driver

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/store"
)

// resyncEvery bounds how long kernel peer entries can drift from the store
// (entries deleted behind vxnet's back) when no endpoint changes.
const resyncEvery = 5 * time.Second

// watcher is the goroutine programming one network's peers.
type watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startWatch starts the peer goroutine of n unless it runs already. It
// converges the network namespace's FDB and neighbour entries to the
// store's endpoint records of other hosts: one goroutine per network, so
// updates apply in order; a restart replays the same path from a full list.
func (d *Driver) startWatch(n *Network) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if _, ok := d.watchers[n.Key]; ok {
		return
	}
	ctx, cancel := context.WithCancel(d.life)
	w := &watcher{cancel: cancel, done: make(chan struct{})}
	d.watchers[n.Key] = w
	go func() {
		defer close(w.done)
		d.watchPeers(ctx, n.Key, n.VNI)
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

func (d *Driver) watchPeers(ctx context.Context, key string, vni uint32) {
	log := d.o.Log.WithFields(map[string]any{"network": key, "vni": vni})
	var index uint64
	failing := false
	for ctx.Err() == nil {
		kvs, next, err := d.nextEndpoints(ctx, key, index)
		if err == nil {
			err = d.o.Plane.SetPeers(vni, d.peers(kvs))
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
			failing, index = true, 0
			sleep(ctx, time.Second)
			continue
		}
		if failing {
			log.Info("peer updates work again")
		}
		failing, index = false, next
	}
}

// nextEndpoints waits for a change of the network's endpoint records, or
// for resyncEvery, and returns the full list.
func (d *Driver) nextEndpoints(ctx context.Context, key string, index uint64) ([]store.KV, uint64, error) {
	wctx, cancel := context.WithTimeout(ctx, resyncEvery)
	defer cancel()
	kvs, next, err := d.o.Store.Watch(wctx, endpointPrefix(key), index)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		lctx, lcancel := context.WithTimeout(ctx, resyncEvery)
		defer lcancel()
		return d.o.Store.List(lctx, endpointPrefix(key))
	}
	return kvs, next, err
}

// peers are the other hosts' endpoints as kernel entries.
func (d *Driver) peers(kvs []store.KV) []dataplane.Peer {
	var out []dataplane.Peer
	for _, kv := range kvs {
		var ep Endpoint
		if err := store.Decode(kv, &ep); err != nil {
			d.o.Log.WithError(err).Warn("skipping unreadable endpoint record")
			continue
		}
		mac, err := net.ParseMAC(ep.MAC)
		if err != nil || ep.Host == d.o.HostID || ep.VTEP == d.o.VTEP || !ep.VTEP.IsValid() {
			continue
		}
		for _, a := range ep.Addrs {
			out = append(out, dataplane.Peer{IP: a.Addr(), MAC: mac, VTEP: net.IP(ep.VTEP.AsSlice())})
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

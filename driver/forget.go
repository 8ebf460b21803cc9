package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Forgotten counts what ForgetHost removed.
type Forgotten struct {
	Endpoints int // cluster endpoint records (every host drops their entries)
	Records   int // the host's own records (hosts/<host>/...)
	Networks  int // cluster networks the host left
	Removed   int // of those, networks it was the last host of (with their VNI)
}

// ForgetHost removes a host gone for good from the cluster records: its
// endpoints and their MAC keys, its own records, and its membership of
// every cluster network;
// a network left with no host goes, with its VNI. It is what `vxnet host
// forget` and the grace of a silent host (--forget-after) run; the
// addresses go with the IPAM's part. Every step is idempotent, so a
// forget cut short is finished by running it again.
func ForgetHost(ctx context.Context, s store.Store, host string) (Forgotten, error) {
	var f Forgotten
	if host == "" || strings.Contains(host, "/") {
		return f, errkind.Errorf(errkind.BadRequest, "forget host: bad host ID %q", host)
	}
	kvs, _, err := s.List(ctx, keys.AllEndpoints)
	if err != nil {
		return f, fmt.Errorf("forget host %q: %w", host, err)
	}
	changed := map[string][]string{} // network → its endpoints deleted
	for _, kv := range kvs {
		var ep Endpoint
		if err := store.Decode(kv, &ep); err != nil || ep.Host != host {
			continue
		}
		if err := s.DeleteCAS(ctx, kv.Key, kv.ModifyIndex); err != nil && !errors.Is(err, store.ErrConflict) {
			return f, fmt.Errorf("forget host %q: endpoint %q: %w", host, ep.ID, err)
		}
		changed[ep.Network] = append(changed[ep.Network], ep.ID)
		f.Endpoints++
	}
	for net, ids := range changed {
		if err := noteChanges(ctx, s, net, ids...); err != nil {
			return f, fmt.Errorf("forget host %q: %w", host, err)
		}
	}
	macs, _, err := s.List(ctx, keys.AllMACs)
	if err != nil {
		return f, fmt.Errorf("forget host %q: %w", host, err)
	}
	for _, kv := range macs {
		var rec MACRecord
		if err := store.Decode(kv, &rec); err != nil || rec.Host != host {
			continue
		}
		if err := s.DeleteCAS(ctx, kv.Key, kv.ModifyIndex); err != nil && !errors.Is(err, store.ErrConflict) {
			return f, fmt.Errorf("forget host %q: MAC key %q: %w", host, kv.Key, err)
		}
	}
	own, _, err := s.List(ctx, keys.Host(host))
	if err != nil {
		return f, fmt.Errorf("forget host %q: %w", host, err)
	}
	for _, kv := range own {
		if err := s.Delete(ctx, kv.Key); err != nil {
			return f, fmt.Errorf("forget host %q: %w", host, err)
		}
		f.Records++
	}
	nets, _, err := s.List(ctx, keys.Networks)
	if err != nil {
		return f, fmt.Errorf("forget host %q: %w", host, err)
	}
	for _, kv := range nets {
		var n Network
		if err := store.Decode(kv, &n); err != nil {
			return f, err
		}
		if _, ok := n.Hosts[host]; !ok {
			continue
		}
		last, err := leaveCluster(ctx, s, n.Key, host)
		if err != nil {
			return f, fmt.Errorf("forget host %q: %w", host, err)
		}
		f.Networks++
		if last {
			f.Removed++
		}
	}
	return f, nil
}

// leaveCluster removes host from cluster network key, and the network
// with its endpoint records and VNI when no host is left; it tells
// whether host was the last.
func leaveCluster(ctx context.Context, s store.Store, key, host string) (bool, error) {
	var (
		last bool
		vni  uint32
	)
	_, err := store.Update(ctx, s, keys.Network(key), func(cur *Network) (*Network, error) {
		last = false
		if cur == nil {
			return nil, nil
		}
		if _, ok := cur.Hosts[host]; !ok {
			return cur, nil
		}
		next := *cur
		next.Hosts = map[string]string{}
		for h, id := range cur.Hosts {
			if h != host {
				next.Hosts[h] = id
			}
		}
		if len(next.Hosts) == 0 {
			last, vni = true, cur.VNI
			return nil, nil
		}
		return &next, nil
	})
	if err != nil || !last {
		return false, err
	}
	for _, prefix := range []string{keys.Endpoints(key), keys.MACs(key)} {
		kvs, _, err := s.List(ctx, prefix)
		if err != nil {
			return true, err
		}
		for _, kv := range kvs {
			if err := s.Delete(ctx, kv.Key); err != nil {
				return true, err
			}
		}
	}
	if err := s.Delete(ctx, keys.Changes(key)); err != nil {
		return true, err
	}
	return true, releaseVNI(ctx, s, vni, key)
}

// releaseVNI deletes vnis/<vni> if network key still holds it.
func releaseVNI(ctx context.Context, s store.Store, vni uint32, key string) error {
	_, err := store.Update(ctx, s, keys.VNI(vni), func(cur *VNIRecord) (*VNIRecord, error) {
		if cur != nil && cur.Network != key {
			return cur, nil
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("release VNI %d: %w", vni, err)
	}
	return nil
}

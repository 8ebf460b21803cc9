package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// recordEndpoint writes a new endpoint's store records: its MAC key, this
// host's copy and the cluster record, and advances the network's change
// log, which other hosts watch (changes.go).
//
// Why one transaction: an endpoint add is the operation a cluster does
// most; written one by one its records cost three Consul writes (Raft
// entries) plus the address lease. The common case, a MAC nobody holds
// and an endpoint not yet recorded, is one create-only transaction: all
// three records or none. Only when a key exists does it fall back to the
// writes one by one (takeMAC, publish), which tell a duplicate endpoint
// from a MAC held by another endpoint and take over a stale holder.
func (d *Driver) recordEndpoint(ctx context.Context, ep *Endpoint) error {
	ops, err := d.endpointOps(ep)
	if err != nil {
		return err
	}
	err = txnWithChanges(ctx, d.o.Store, ep.Network, ops, ep.ID)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("record endpoint %q: %w", ep.ID, err)
	}
	// The record holding exactly what was to be written is this create's
	// own, applied by an attempt whose answer was lost.
	if kv, gerr := d.o.Store.Get(ctx, ops[2].Key); gerr == nil && bytes.Equal(kv.Value, ops[2].Value) {
		return nil
	}
	if err := d.takeMAC(ctx, ep); err != nil {
		return err
	}
	if err := d.publish(ctx, ep); err != nil {
		if rerr := d.releaseMACs(context.WithoutCancel(ctx), ep.Network, ep.ID, ep.MAC); rerr != nil {
			d.o.Log.WithError(rerr).WithField("endpoint", ep.ID).Error("roll back MAC address reservation")
		}
		return err
	}
	return noteChanges(ctx, d.o.Store, ep.Network, ep.ID)
}

// endpointOps are the create-only writes of a new endpoint's records.
func (d *Driver) endpointOps(ep *Endpoint) ([]store.Op, error) {
	mac, err := json.Marshal(MACRecord{Endpoint: ep.ID, Host: d.o.HostID, Since: time.Now().UTC(), Nonce: store.Nonce()})
	if err != nil {
		return nil, fmt.Errorf("encode MAC record of endpoint %q: %w", ep.ID, err)
	}
	rec, err := json.Marshal(ep)
	if err != nil {
		return nil, fmt.Errorf("encode endpoint %q: %w", ep.ID, err)
	}
	return []store.Op{
		store.Create(keys.MAC(ep.Network, ep.MAC), mac),
		store.Create(keys.HostEndpoint(d.o.HostID, ep.ID), rec),
		store.Create(keys.Endpoint(ep.Network, ep.ID), rec),
	}, nil
}

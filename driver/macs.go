package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// staleMACAfter is how long a MAC key may name an endpoint without a
// record before another endpoint may take the MAC over: the window of a
// create between its two writes is milliseconds, a create killed in
// between never writes the record.
const staleMACAfter = time.Minute

// MACRecord is the value of macs/<key>/<mac>.
type MACRecord struct {
	Endpoint string    `json:"endpoint"`
	Host     string    `json:"host"`
	Since    time.Time `json:"since"`
	// Nonce is unique per write: a create retried after its answer was
	// lost recognises its own write by it.
	Nonce string `json:"nonce"`
}

// takeMAC makes ep the holder of its MAC on its network, or says which
// endpoint holds it.
//
// Why: The kernel holds one FDB entry per MAC, so two endpoints
// of a network with one MAC (`docker run --mac-address` on two hosts)
// would take each other's traffic. CreateEndpoint therefore takes the
// create-only key macs/<network key>/<mac> before it writes the endpoint
// record, and every removal of the endpoint releases it after the record,
// only if it still names that endpoint. Endpoints recorded before these
// keys existed have none; their removal finds nothing to release.
func (d *Driver) takeMAC(ctx context.Context, ep *Endpoint) error {
	key := keys.MAC(ep.Network, ep.MAC)
	rec := MACRecord{Endpoint: ep.ID, Host: d.o.HostID, Since: time.Now().UTC(), Nonce: store.Nonce()}
	r := store.Retrying(ctx)
	for r.Next() {
		err := store.CreateJSON(ctx, d.o.Store, key, rec)
		if !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return fmt.Errorf("endpoint %q: reserve MAC address %s: %w", ep.ID, ep.MAC, err)
			}
			return nil
		}
		cur, idx, err := store.GetJSON[MACRecord](ctx, d.o.Store, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			r.Now() // released meanwhile
			continue
		case err != nil:
			return fmt.Errorf("endpoint %q: read holder of MAC address %s: %w", ep.ID, ep.MAC, err)
		case cur.Nonce == rec.Nonce:
			return nil // our own write, whose answer was lost
		case cur.Endpoint == ep.ID:
			return errkind.Errorf(errkind.Conflict, "endpoint %q already exists in network %s", ep.ID, ep.Network)
		}
		stale, err := d.staleMAC(ctx, ep.Network, cur)
		if err != nil {
			return fmt.Errorf("endpoint %q: MAC address %s: %w", ep.ID, ep.MAC, err)
		}
		if d.o.Scope.Swarm() && cur.Host != d.o.HostID {
			// Swarm's manager owns the addresses (and so the MACs
			// derived from them): one it gave to a task on this node
			// takes over from another host's holder, e.g. a silent
			// host's old task; the newest record wins in peers too.
			stale = true
		}
		if !stale {
			return errkind.Errorf(errkind.Conflict, "endpoint %q: MAC address %s is already used by endpoint %q (host %s) in network %s",
				ep.ID, ep.MAC, cur.Endpoint, cur.Host, ep.Network)
		}
		d.o.Log.WithFields(map[string]any{"network": ep.Network, "endpoint": ep.ID, "mac": ep.MAC, "holder": cur.Endpoint}).
			Warn("taking over a MAC address held by an endpoint without a record since " + cur.Since.Format(time.RFC3339) + ", or (swarm) by another host's older task")
		if err := store.CASJSON(ctx, d.o.Store, key, rec, idx); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("endpoint %q: take over MAC address %s: %w", ep.ID, ep.MAC, err)
		}
	}
	return fmt.Errorf("endpoint %q: %w", ep.ID, r.Err(fmt.Sprintf("reserve MAC address %s (%q)", ep.MAC, key)))
}

// staleMAC tells whether rec names an endpoint that has had no cluster
// record for staleMACAfter: a create killed between its two writes.
func (d *Driver) staleMAC(ctx context.Context, network string, rec *MACRecord) (bool, error) {
	if time.Since(rec.Since) < staleMACAfter {
		return false, nil
	}
	_, err := d.o.Store.Get(ctx, keys.Endpoint(network, rec.Endpoint))
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	return false, err
}

// releaseMACs deletes the MAC keys of network that name endpoint id: mac
// when the caller knows it, else every one found under the network's
// prefix (a removal retried after its records went). A key another
// endpoint took over stays.
func (d *Driver) releaseMACs(ctx context.Context, network, id, mac string) error {
	var kvs []store.KV
	if mac != "" {
		kv, err := d.o.Store.Get(ctx, keys.MAC(network, mac))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("endpoint %q: read MAC address %s: %w", id, mac, err)
		}
		kvs = []store.KV{kv}
	} else {
		var err error
		if kvs, _, err = d.o.Store.List(ctx, keys.MACs(network)); err != nil {
			return fmt.Errorf("endpoint %q: list MAC addresses of network %s: %w", id, network, err)
		}
	}
	for _, kv := range kvs {
		var rec MACRecord
		if err := store.Decode(kv, &rec); err != nil {
			return err
		}
		if rec.Endpoint != id {
			continue
		}
		err := d.o.Store.DeleteCAS(ctx, kv.Key, kv.ModifyIndex)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("endpoint %q: release MAC address %s: %w", id, strings.TrimPrefix(kv.Key, keys.MACs(network)), err)
		}
	}
	return nil
}

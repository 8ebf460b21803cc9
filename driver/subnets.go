package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// claimTTL bounds a create between its claim and its end.
const claimTTL = 2 * time.Minute

// Claims is the value of subnets: claim nonce → claim.
type Claims map[string]Claim

// Claim is one create under way.
type Claim struct {
	Network string         `json:"network"` // cluster key
	Subnets []netip.Prefix `json:"subnets"`
	Host    string         `json:"host"`
	Since   time.Time      `json:"since"`
}

// readClaims reads the claims and the ModifyIndex to CAS them with (0:
// absent), without those older than claimTTL.
func (d *Driver) readClaims(ctx context.Context) (Claims, uint64, error) {
	kv, err := d.o.Store.Get(ctx, keys.Claims)
	if errors.Is(err, store.ErrNotFound) {
		return Claims{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read subnet claims: %w", err)
	}
	cs := Claims{}
	if err := store.Decode(kv, &cs); err != nil {
		return nil, 0, err
	}
	for nonce, c := range cs {
		if time.Since(c.Since) > claimTTL {
			d.o.Log.WithFields(map[string]any{"network": c.Network, "host": c.Host}).Warn("dropping the subnet claim of a create cut short")
			delete(cs, nonce)
		}
	}
	return cs, kv.ModifyIndex, nil
}

// writeClaims writes cs if the key is still at index, deleting the key
// when cs is empty; a lost race wraps store.ErrConflict.
func (d *Driver) writeClaims(ctx context.Context, cs Claims, index uint64) error {
	if len(cs) == 0 {
		if index == 0 {
			return nil
		}
		return d.o.Store.DeleteCAS(ctx, keys.Claims, index)
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return fmt.Errorf("encode subnet claims: %w", err)
	}
	_, err = d.o.Store.CAS(ctx, keys.Claims, b, index)
	return err
}

// claimSubnets records a create of want, or refuses it when a create of
// another network with an overlapping subnet is under way. It returns the
// claim's nonce for releaseClaim.
//
// Why (creates racing on several hosts): Listing the networks
// cannot decide it alone: each host lists before the other writes. So a
// create of a cluster network claims its subnets in the one key subnets,
// by CAS, before it lists the networks, and drops the claim after it wrote
// the network record (or failed). Of two overlapping creates, the one
// whose claim comes second either finds the first's claim there, or the
// first is done and its record is in the listing: exactly one wins. The key
// holds only creates under way and is deleted when the last one ends; a
// claim left by a create killed half-way is dropped after claimTTL by the
// next claim.
func (d *Driver) claimSubnets(ctx context.Context, want *Network) (string, error) {
	nonce := store.Nonce()
	err := d.updateClaims(ctx, func(cs Claims) error {
		for _, c := range cs {
			if c.Network == want.Key {
				continue // the same network created on another host
			}
			if a, b, ok := overlap(want.Subnets, c.Subnets); ok {
				return errkind.Errorf(errkind.Conflict, "subnet %s overlaps subnet %s of vxnet network %s, being created by host %s", a, b, c.Network, c.Host)
			}
		}
		cs[nonce] = Claim{Network: want.Key, Subnets: want.Subnets, Host: d.o.HostID, Since: time.Now().UTC()}
		return nil
	})
	if err != nil {
		return "", err
	}
	return nonce, nil
}

// releaseClaim drops the claim nonce.
func (d *Driver) releaseClaim(ctx context.Context, nonce string) error {
	return d.updateClaims(ctx, func(cs Claims) error {
		delete(cs, nonce)
		return nil
	})
}

// updateClaims is a CAS loop over the claims; fn changes them or refuses.
// The key comes and goes with the creates, and Consul's store reports a
// create-only write that lost to a key created and deleted again since as
// unavailable, not as a conflict: such a write is retried a few times (a
// store really down fails the next read).
func (d *Driver) updateClaims(ctx context.Context, fn func(Claims) error) error {
	unavailable := 0
	r := store.Retrying(ctx)
	for r.Next() {
		cs, index, err := d.readClaims(ctx)
		if err != nil {
			return err
		}
		if err := fn(cs); err != nil {
			return err
		}
		err = d.writeClaims(ctx, cs, index)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, store.ErrConflict):
		case errors.Is(err, store.ErrUnavailable) && index == 0 && unavailable < 3:
			unavailable++
		default:
			return fmt.Errorf("write subnet claims: %w", err)
		}
	}
	return r.Err(fmt.Sprintf("write subnet claims %q", keys.Claims))
}

// overlap returns the first pair of overlapping subnets of a and b.
func overlap(a, b []netip.Prefix) (netip.Prefix, netip.Prefix, bool) {
	for _, x := range a {
		for _, y := range b {
			if x.Overlaps(y) {
				return x, y, true
			}
		}
	}
	return netip.Prefix{}, netip.Prefix{}, false
}

// retryPause is a short jittered pause: join waits ten of them between
// reads of a network another host is creating.
func retryPause() time.Duration { return time.Duration(1+rand.IntN(20)) * time.Millisecond }

package store

import (
	"context"
	"errors"
)

// MultiGetter is implemented by stores that read several keys in one
// request (both backends do; GetMany reads key by key for wrappers that
// do not).
//
// Why: while networks are created every join rewrites the network's
// record and pool, and each member's next reconcile round reads every
// one that changed again (store.Cache): a request per record, most of a
// simulated 100-host cluster's requests while its hosts created their
// networks (docs/scaling.md). Read together they are one request per
// MaxTxnOps keys.
type MultiGetter interface {
	// GetMany returns, by key, those of ks that exist, each as Get would
	// return it; absent keys are left out.
	GetMany(ctx context.Context, ks []string) (map[string]KV, error)
}

// GetMany returns, by key, those of ks that exist: in one request per
// MaxTxnOps keys where s is a MultiGetter, else (and for one key) with a
// Get each.
//
// With a round in ctx (WithRound), the keys the round's second read
// covered are answered from it, once each (Round.take).
func GetMany(ctx context.Context, s Store, ks []string) (map[string]KV, error) {
	r := roundOf(ctx)
	var have map[string]KV
	ask := ks
	if r != nil {
		have, ask = r.take(ks)
	}
	var got map[string]KV
	var err error
	if mg, ok := s.(MultiGetter); ok && len(ask) > 1 {
		got, err = mg.GetMany(ctx, ask)
	} else {
		got, err = GetEach(ctx, s, ask)
	}
	if err != nil {
		return nil, err
	}
	for k, kv := range have {
		got[k] = kv
	}
	if r != nil {
		r.read(ks, got) // the next round checks them at these indexes
	}
	return got, nil
}

// GetEach is GetMany with a Get per key: the fallback of stores and
// wrappers without one request for several keys.
func GetEach(ctx context.Context, s Store, ks []string) (map[string]KV, error) {
	out := make(map[string]KV, len(ks))
	for _, k := range ks {
		kv, err := s.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[k] = kv
	}
	return out, nil
}

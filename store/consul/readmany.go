package consul

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
)

// ReadMany lists prefixes and reads ks in one read-only transaction
// (store.ManyReader) of get-tree and get-or-empty operations, per
// roundOps operations, read as consistently as List. get-or-empty
// answers an absent key with an empty entry of index 0 instead of
// rolling the transaction back (as get does); that entry is left out.
// More than one transaction's worth of operations is read in several,
// each of one moment.
func (s *Store) ReadMany(ctx context.Context, prefixes, ks []string) (map[string][]store.KV, map[string]store.KV, error) {
	if err := store.NoNesting(prefixes); err != nil {
		return nil, nil, err
	}
	for _, k := range slices.Concat(prefixes, ks) {
		if err := s.checkKey(ctx, "read many", k); err != nil {
			return nil, nil, err
		}
	}
	lists := make(map[string][]store.KV, len(prefixes))
	got := make(map[string]store.KV, len(ks))
	err := s.inChunks(prefixes, ks, func(ps, ks []string) error {
		return s.readManyChunk(ctx, ps, ks, lists, got)
	})
	if err != nil {
		return nil, nil, err
	}
	for _, kvs := range lists {
		sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	}
	return lists, got, nil
}

// readManyChunk lists ps and reads ks in one transaction, into lists and
// got.
func (s *Store) readManyChunk(ctx context.Context, ps, ks []string, lists map[string][]store.KV, got map[string]store.KV) error {
	ok, resp, subject, err := s.chunkTxn(ctx, "read many", ps, ks, func(k string) *api.KVTxnOp {
		return &api.KVTxnOp{Verb: api.KVGetOrEmpty, Key: s.path(k)}
	})
	if err != nil {
		return err
	}
	if !ok || len(resp.Results) < len(ks) {
		return fmt.Errorf("read many %q: consul %q rolled the read back: %v", subject, s.addr, resp.Errors)
	}
	for _, p := range ps {
		lists[p] = []store.KV{}
	}
	// One result per key, last, in order; the listings' come before.
	split := len(resp.Results) - len(ks)
	for _, r := range resp.Results[split:] {
		if r.KV != nil && r.KV.ModifyIndex != 0 { // else absent
			kv := s.kvOf(r.KV)
			got[kv.Key] = kv
		}
	}
	for _, r := range resp.Results[:split] {
		if r.KV == nil {
			continue
		}
		kv := s.kvOf(r.KV)
		for _, p := range ps {
			if strings.HasPrefix(kv.Key, p) {
				lists[p] = append(lists[p], kv)
			}
		}
	}
	return nil
}

var _ store.ManyReader = (*Store)(nil)

package driver

import "github.com/vxnet/vxnet/store"

// recordCache holds the decoded endpoint records of one network's last
// listing, by key, with the store index each was decoded at: a record is
// decoded again only when its index changed.
//
// Why: the peer watcher decodes the whole listing on each change and each
// resync (for the peers, the names, the VTEPs and the lag), and decoding
// JSON was a quarter of the plugin's CPU at 700 endpoints, growing with
// the network (issue #13), while a change names a few records. A nil
// cache decodes every time. Decoded records share their slices (Addrs,
// Names) with the cache: read them, do not change them.
type recordCache struct {
	m       map[string]cachedRecord
	decoded int // records decoded, not found in the cache
}

type cachedRecord struct {
	index uint64
	ep    Endpoint
	err   error
}

func newRecordCache() *recordCache { return &recordCache{m: map[string]cachedRecord{}} }

// decode is store.Decode of kv into an Endpoint, from the cache when the
// record has not changed since (a store that gives no index, 0, is decoded
// every time).
func (c *recordCache) decode(kv store.KV) (Endpoint, error) {
	if c == nil || kv.ModifyIndex == 0 {
		var ep Endpoint
		err := store.Decode(kv, &ep)
		return ep, err
	}
	if r, ok := c.m[kv.Key]; ok && r.index == kv.ModifyIndex {
		return r.ep, r.err
	}
	var r cachedRecord
	r.index, r.err = kv.ModifyIndex, store.Decode(kv, &r.ep)
	c.decoded++
	c.m[kv.Key] = r
	return r.ep, r.err
}

// keep forgets the records not in kvs (removed from the network).
func (c *recordCache) keep(kvs []store.KV) {
	if c == nil {
		return
	}
	in := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		in[kv.Key] = true
	}
	for k := range c.m {
		if !in[k] {
			delete(c.m, k)
		}
	}
}

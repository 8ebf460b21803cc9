package driver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// logRequests counts the requests made through it that touch change logs
// (changes/…): watches, index checks, reads and listings. It passes the
// index check and the read of several keys on, as the Consul store has
// them.
type logRequests struct {
	store.Store
	mu      sync.Mutex
	n       int
	rounds  int // index checks of change logs: one per round
	watches int // watches of all change logs
}

func (c *logRequests) count(ks ...string) {
	for _, k := range ks {
		if strings.HasPrefix(k, keys.AllChanges) {
			c.mu.Lock()
			c.n++
			c.mu.Unlock()
			return
		}
	}
}

func (c *logRequests) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

func (c *logRequests) Watch(ctx context.Context, prefix string, index uint64) ([]store.KV, uint64, error) {
	kvs, idx, err := c.Store.Watch(ctx, prefix, index)
	if err == nil {
		c.count(prefix)
		if prefix == keys.AllChanges {
			c.mu.Lock()
			c.watches++
			c.mu.Unlock()
		}
	}
	return kvs, idx, err
}

// takeRounds returns the rounds and the watches of all change logs
// since the last takeRounds.
func (c *logRequests) takeRounds() (rounds, watches int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rounds, watches = c.rounds, c.watches
	c.rounds, c.watches = 0, 0
	return rounds, watches
}

func (c *logRequests) Get(ctx context.Context, key string) (store.KV, error) {
	c.count(key)
	return c.Store.Get(ctx, key)
}

func (c *logRequests) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	c.count(prefix)
	return c.Store.List(ctx, prefix)
}

func (c *logRequests) Changed(ctx context.Context, known map[string]uint64) ([]string, error) {
	ks := make([]string, 0, len(known))
	for k := range known {
		ks = append(ks, k)
	}
	c.count(ks...)
	if len(ks) > 0 && strings.HasPrefix(ks[0], keys.AllChanges) {
		c.mu.Lock()
		c.rounds++
		c.mu.Unlock()
	}
	return store.Changed(ctx, c.Store, known)
}

func (c *logRequests) GetMany(ctx context.Context, ks []string) (map[string]store.KV, error) {
	c.count(ks...)
	return store.GetMany(ctx, c.Store, ks)
}

// A host follows the change logs of all its networks with one watch, so a
// burst of endpoint adds on its networks costs it a few requests, not one
// watch return (and before change 9 a read) per add and network: 16 adds
// on 4 networks woke its 4 per-network watches about 16 times before.
func TestOneLogWatchPerHost(t *testing.T) {
	s, _ := countedStore(t, "", false)
	c := &logRequests{Store: s}
	h1, h2 := newHost(t, s, "h1", "198.18.0.11"), newHost(t, c, "h2", "198.18.0.12")
	ctx := context.Background()
	const nets, perNet = 4, 4
	netID := func(i int) string { return strings.Repeat(fmt.Sprint(i+3), 64) }
	for i := range nets {
		for _, h := range []*env{h1, h2} {
			if err := h.d.CreateNetwork(ctx, createReq(netID(i), fmt.Sprintf("198.19.%d.0/24", 10+i), "", nil)); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(2 * logRoundIdle) // h2's watchers have listed their networks
	c.take()
	c.takeRounds()
	start := time.Now()
	for j := range perNet {
		for i := range nets {
			if err := h1.createEndpoint(netID(i), fmt.Sprintf("%064x", 100+i*perNet+j), fmt.Sprintf("198.19.%d.%d/24", 10+i, 10+j), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	for h2.plane.peerCount() < nets*perNet {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("h2 programmed %d of %d endpoints after %v", h2.plane.peerCount(), nets*perNet, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	// Rounds of two-host networks are at least logRoundPerHost apart
	// (logpace.go), of at most three requests each (watch, check, read),
	// however many networks moved.
	n := c.take()
	rounds, _ := c.takeRounds()
	t.Logf("%d change-log requests in %d rounds for %d adds on %d networks, propagated in %v", n, rounds, nets*perNet, nets, took.Round(time.Millisecond))
	if most := int(took/logRoundPerHost) + 2; rounds > most {
		t.Errorf("h2 made %d log rounds in %v; want at most %d (one per %v)", rounds, took.Round(time.Millisecond), most, logRoundPerHost)
	}
	if n > 3*rounds {
		t.Errorf("h2 made %d change-log requests in %d rounds to follow %d adds on %d networks; want at most 3 a round (one watch for all its networks)", n, rounds, nets*perNet, nets)
	}
	for i := range nets {
		for j := range perNet {
			h1.deleteEndpoint(netID(i), fmt.Sprintf("%064x", 100+i*perNet+j))
		}
		h1.deleteNetwork(netID(i))
		h2.deleteNetwork(netID(i))
	}
	h1.wantNoKeys()
}

// peerCount is the number of peer entries programmed on all networks.
func (f *fakePlane) peerCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.peers {
		n += len(p)
	}
	return n
}

// A member more than carriedRecords changes behind (a few rounds of the
// log watch on a busy network) reads the records the log no longer
// carries in one request, not with a Get each.
func TestFollowReadsUncarriedRecordsTogether(t *testing.T) {
	s, r := countedStore(t, keys.AllEndpoints, false)
	e1, e2, start := twoMembers(t, s, r)
	ctx := context.Background()
	const adds = carriedRecords + 4
	want := []string{"198.19.1.2@198.18.0.11"}
	for i := range adds {
		if err := e1.createEndpoint(net1, fmt.Sprintf("%064x", 200+i), fmt.Sprintf("198.19.1.%d/24", 10+i), ""); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("198.19.1.%d@198.18.0.11", 10+i))
	}
	waitPeers(t, e2, DefaultVNIOffset, strings.Join(want, ","))
	r.TakeRequests() // h2's own watcher's reads
	next := e2.d.nextListing(ctx, followKey, start)
	if next.err != nil || len(next.kvs) != adds+1 {
		t.Fatalf("after %d adds: records %v, err %v; want %d", adds, keysOf(next.kvs), next.err, adds+1)
	}
	if n := r.TakeRequests(); n != 1 {
		t.Errorf("following %d adds read the %d records the log does not carry in %d requests; want 1", adds, adds-carriedRecords, n)
	}
	dropTwoMembers(e1, e2, 200, adds)
}

// While its logs keep moving a host checks them without waiting on the
// watch first, which would return at once: a round of two requests
// (check, read), not three. Every add still reaches it.
func TestBusyRoundsSkipTheWatch(t *testing.T) {
	s, _ := countedStore(t, "", false)
	c := &logRequests{Store: s}
	h1, h2 := newHost(t, s, "h1", "198.18.0.11"), newHost(t, c, "h2", "198.18.0.12")
	ctx := context.Background()
	netID := strings.Repeat("7", 64)
	for _, h := range []*env{h1, h2} {
		if err := h.d.CreateNetwork(ctx, createReq(netID, "198.19.20.0/24", "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * logRoundIdle) // h2's watcher has listed the network
	c.takeRounds()
	const adds = 30
	var want []string
	for i := range adds {
		if err := h1.createEndpoint(netID, fmt.Sprintf("%064x", 400+i), fmt.Sprintf("198.19.20.%d/24", 10+i), ""); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("198.19.20.%d@198.18.0.11", 10+i))
		time.Sleep(4 * logRoundPerHost) // a round's gap on a two-host network is 2 × logRoundPerHost
	}
	waitPeers(t, h2, DefaultVNIOffset, strings.Join(want, ","))
	rounds, watches := c.takeRounds()
	t.Logf("%d adds followed in %d rounds, %d of them after a watch", adds, rounds, watches)
	if rounds < 2 || watches >= rounds {
		t.Errorf("h2 followed %d adds in %d rounds, %d of them waiting on the watch; want fewer watches than rounds", adds, rounds, watches)
	}
	for i := range adds {
		h1.deleteEndpoint(netID, fmt.Sprintf("%064x", 400+i))
	}
	h1.deleteNetwork(netID)
	h2.deleteNetwork(netID)
	h1.wantNoKeys()
}

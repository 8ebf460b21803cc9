package ipam

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store/keys"
)

// gatedCreates, once armed, holds the first n lease creates (CAS on an
// absent key) made through it until all n have arrived, so n requests
// made together have all chosen their address before any takes it; later
// creates pass.
type gatedCreates struct {
	*listCounter
	n       int
	mu      sync.Mutex
	armed   bool
	arrived int
	all     chan struct{}
}

// arm makes the next n lease creates wait for each other.
func (g *gatedCreates) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed, g.arrived, g.all = true, 0, make(chan struct{})
}

func (g *gatedCreates) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	if index == 0 && strings.HasPrefix(key, keys.AllLeases) {
		g.mu.Lock()
		wait, all := g.armed && g.arrived < g.n, g.all
		if wait {
			g.arrived++
			if g.arrived == g.n {
				close(all)
			}
		}
		g.mu.Unlock()
		if wait {
			select {
			case <-all:
			case <-time.After(5 * time.Second): // the test then fails on its count
			}
		}
	}
	return g.listCounter.CAS(ctx, key, value, index)
}

// Requests this host makes together (Docker starts several containers at
// once) each get their own address from the cursor without listing the
// pool's leases: they all read the same cursor, all but one lost the
// create, and each loser listed every lease of the pool (issue #13).
func TestLeaseNextTogetherListsNothing(t *testing.T) {
	const together = 4
	s, _ := openStore(t)
	g := &gatedCreates{listCounter: &listCounter{Store: s}, n: together}
	m := New(Options{Store: g, HostID: "h1"})
	id := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.5.0/24"})
	mustRequest(t, m, id, "", gwOpts)
	mustRequest(t, m, id, "", nil) // this host has leased in the pool: it has a cursor
	g.arm()
	before := g.leaseLists.Load()
	got := make([]netip.Prefix, together)
	errs := make([]error, together)
	var wg sync.WaitGroup
	for i := range together {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := request(m, id, "", nil)
			if err == nil {
				got[i], err = netip.ParsePrefix(a)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[netip.Prefix]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if seen[got[i]] {
			t.Fatalf("%s handed out twice among %v", got[i], got)
		}
		seen[got[i]] = true
	}
	if n := g.leaseLists.Load() - before; n != 0 {
		t.Errorf("%d requests made together listed the pool's leases %d times; want none", together, n)
	}
	leases, err := m.Leases(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if leases[a.Addr()].Host != "h1" {
			t.Errorf("no lease of h1 for %s handed out", a.Addr())
		}
	}
}

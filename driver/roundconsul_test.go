package driver

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul"
	"github.com/vxnet/vxnet/store/consul/consultest"
)

// requestCounter is a proxy in front of a Consul that counts the HTTP
// requests it passes on, but blocking queries (?index=: the peer
// watchers'), which wait in Consul rather than work there.
type requestCounter struct {
	*consultest.Proxy
	n atomic.Int64
}

func (c *requestCounter) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("index") == "" {
		c.n.Add(1)
	}
	c.Forward(w, r)
}

// A steady reconcile round on Consul is one HTTP request: the listing of
// the host's networks and the index checks of their records and of its
// endpoints' records and copies, read together in one read-only
// transaction (store.Round). Before, four: a listing, two checks, a
// listing of the copies' keys (the IPAM's pool check, a fifth, is a fake
// here).
func TestSteadyRoundIsOneConsulRequest(t *testing.T) {
	c := &requestCounter{}
	c.Proxy = consultest.NewProxy(t, consultest.Addr(t), c.serve)
	s, err := consul.Open(context.Background(), "consul://"+c.Addr()+"/vxnet-driver-test-"+store.Nonce())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := newHost(t, s, "h1", "198.18.0.11")
	e.d.sweep.every = time.Hour // as vxnet serve: the cluster's searches now and then
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	joinEndpoints(t, e, 3)
	round := func() int64 {
		t.Helper()
		for last := int64(-1); last != c.n.Load(); { // the peer watcher settles
			last = c.n.Load()
			time.Sleep(300 * time.Millisecond)
		}
		before := c.n.Load()
		_, token := e.d.SweepDue() // as vxnet serve: a sweep done ends
		if err := e.d.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		e.d.SweepDone(token)
		return c.n.Load() - before
	}
	round()
	round()
	for i := range 3 {
		if n := round(); n != 1 {
			t.Errorf("steady round %d: %d Consul requests; want 1", i+1, n)
		}
	}
}

package driver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/keys"
	"github.com/vxnet/vxnet/store/storetest"
)

// countedStore opens a bbolt store for the test and a wrapper of it
// counting the records under prefix read (and, with keysToo, listed).
func countedStore(t *testing.T, prefix string, keysToo bool) (store.Store, *storetest.ValueReads) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &storetest.ValueReads{Store: s, Prefix: prefix, Keys: keysToo}
}

// A reconcile round that finds nothing changed reads no network record
// (each grows with the network's hosts, read every 5 s on every host:
// twice per network per round before, the check's Get and dropStale's
// listing of every record); one that another host's join changed reads
// that record again, once for both.
func TestReconcileReadsNetworkRecordsOnlyWhenChanged(t *testing.T) {
	s, r := countedStore(t, keys.Networks, false)
	h1 := newHost(t, r, "h1", "198.18.0.11")
	h2 := newHost(t, s, "h2", "198.18.0.12")
	ctx := context.Background()
	for i, id := range []string{net1, net2} {
		if err := h1.d.CreateNetwork(ctx, createReq(id, fmt.Sprintf("198.19.%d.0/24", i+1), "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h1.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	r.Take()
	for round := range 2 {
		if err := h1.d.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		// The IPAM's ReleaseLost asks it every round too.
		if _, err := h1.d.LocalPools(ctx); err != nil {
			t.Fatal(err)
		}
		if n := r.Take(); n != 0 {
			t.Fatalf("steady reconcile round %d read %d network records; want none", round+1, n)
		}
	}
	if err := h2.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	if err := h1.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.Take(); n != 1 {
		t.Fatalf("reconcile after another host joined one network read %d network records; want 1", n)
	}
}

// A steady reconcile round reads no endpoint record, not even listed by
// key: it checks the indexes of this host's own endpoints' records (a
// listing of each network's keys every round grew with the network's
// endpoints); a record purged meanwhile is still found and republished.
func TestReconcileListsNoEndpointRecords(t *testing.T) {
	s, r := countedStore(t, keys.AllEndpoints, true)
	e := newHost(t, r, "h1", "198.18.0.11")
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	joinEndpoints(t, e, 3)
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	quiet(r)
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.Take(); n != 0 {
		t.Fatalf("steady reconcile round read or listed %d endpoint records; want none", n)
	}
	purged := keys.Endpoint("198.19.1.0_24", endpointID(2))
	if err := s.Delete(ctx, purged); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, purged); err != nil {
		t.Fatalf("endpoint record purged while its veth is up not republished: %v", err)
	}
}

// The cache of this host's own endpoints' records forgets those of the
// endpoints deleted since: they are asked for no more, and a host that
// runs containers for months would otherwise keep every record it ever
// held.
func TestOwnRecordsForgetsDeletedEndpoints(t *testing.T) {
	s, _ := countedStore(t, keys.AllEndpoints, true)
	e := newHost(t, s, "h1", "198.18.0.11")
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	joinEndpoints(t, e, 3)
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.d.nets.ownRecords.Len(); n != 3 {
		t.Fatalf("own records cached after a round with 3 endpoints: %d, want 3", n)
	}
	for _, i := range []int{1, 3} {
		id := endpointID(i)
		if err := errors.Join(e.d.Leave(ctx, &network.LeaveRequest{NetworkID: net1, EndpointID: id}),
			e.d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: net1, EndpointID: id})); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.d.nets.ownRecords.Len(); n != 1 {
		t.Fatalf("own records cached after 2 of 3 endpoints were deleted: %d, want 1", n)
	}
}

// quiet waits until the network's peer watcher stopped reading (it
// follows the change log the endpoint adds wrote), then forgets what it
// read.
func quiet(r *storetest.ValueReads) {
	for last := -1; last != 0; {
		time.Sleep(200 * time.Millisecond)
		last = r.Take()
	}
}

// A network create reads the other networks' records for its overlap
// check only when they changed since this host last read them (each
// grows with its hosts; every create on every host read them all).
func TestCreateReadsUnchangedNetworksOnce(t *testing.T) {
	s, r := countedStore(t, keys.Networks, false)
	h1 := newHost(t, r, "h1", "198.18.0.11")
	h2 := newHost(t, s, "h2", "198.18.0.12")
	ctx := context.Background()
	for i, id := range []string{net1, net2} {
		if err := h2.d.CreateNetwork(ctx, createReq(id, fmt.Sprintf("198.19.%d.0/24", i+1), "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h1.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	r.Take()
	if err := h1.d.CreateNetwork(ctx, createReq(strings.Repeat("3", 64), "198.19.3.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	if n := r.Take(); n > 1 {
		t.Fatalf("a create read %d network records; want at most 1 (the one its first create joined changed; none unchanged)", n)
	}
}

// A steady reconcile round (with the IPAM's LocalPools) makes as many
// index checks of network records, and asks the IPAM as often, with 4
// networks on the host as with 1: one request for all of them. A request
// per network per round (LocalPools' check of each record, the orphan
// check's pool state of each network) was most of an idle host's
// requests at 20 networks per host (docs/scaling.md).
func TestReconcileRequestsDoNotGrowWithNetworks(t *testing.T) {
	perRound := func(networks int) (checks, asked int) {
		_, r := countedStore(t, keys.Networks, false)
		e := newHost(t, r, "h1", "198.18.0.11")
		ctx := context.Background()
		for i := range networks {
			if err := e.d.CreateNetwork(ctx, createReq(fmt.Sprintf("%064x", i+1), fmt.Sprintf("198.19.%d.0/24", i+1), "", nil)); err != nil {
				t.Fatal(err)
			}
		}
		round := func() {
			if err := e.d.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := e.d.LocalPools(ctx); err != nil {
				t.Fatal(err)
			}
		}
		round()
		r.TakeChecks()
		e.pools.mu.Lock()
		e.pools.asked = 0
		e.pools.mu.Unlock()
		round()
		e.pools.mu.Lock()
		defer e.pools.mu.Unlock()
		return r.TakeChecks(), e.pools.asked
	}
	c1, a1 := perRound(1)
	c4, a4 := perRound(4)
	t.Logf("a steady round: %d index checks of network records and %d pool questions with 1 network, %d and %d with 4", c1, a1, c4, a4)
	if c4 != c1 || a1 != 1 || a4 != 1 {
		t.Errorf("a steady round: %d index checks of network records and %d pool questions with 1 network, %d and %d with 4; want the same checks and 1 question each",
			c1, a1, c4, a4)
	}
}

// A reconcile round (with the IPAM's LocalPools) that finds the records of
// all 4 of the host's networks changed by another host's joins reads them
// again in one request, not one each: while networks are created every
// member re-reads each record a join changed, and a request per record
// was most of a simulated 100-host cluster's requests then
// (docs/scaling.md).
func TestReconcileRereadsChangedNetworksTogether(t *testing.T) {
	s, r := countedStore(t, keys.Networks, false)
	h1 := newHost(t, r, "h1", "198.18.0.11")
	h2 := newHost(t, s, "h2", "198.18.0.12")
	ctx := context.Background()
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = fmt.Sprintf("%064x", i+1)
		if err := h1.d.CreateNetwork(ctx, createReq(ids[i], fmt.Sprintf("198.19.%d.0/24", i+1), "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	round := func() {
		if err := h1.d.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := h1.d.LocalPools(ctx); err != nil {
			t.Fatal(err)
		}
	}
	round()
	for i, id := range ids {
		if err := h2.d.CreateNetwork(ctx, createReq(id, fmt.Sprintf("198.19.%d.0/24", i+1), "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	r.Take()
	r.TakeRequests()
	round()
	if reads, requests := r.Take(), r.TakeRequests(); reads != 4 || requests != 1 {
		t.Fatalf("a round after another host joined all 4 networks read %d network records in %d requests; want 4 in 1", reads, requests)
	}
}

package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// storeCalls counts the requests made through it with a context marked by
// counted: those of one callback, not of the driver's watchers.
type storeCalls struct {
	store.Store
	calls  atomic.Int64
	key    string // counted Gets of it in keyGet
	keyGet atomic.Int64
}

type countedKey struct{}

// counted marks ctx for storeCalls.
func counted() context.Context {
	return context.WithValue(context.Background(), countedKey{}, true)
}

func (s *storeCalls) count(ctx context.Context, key string) {
	if ctx.Value(countedKey{}) == nil {
		return
	}
	s.calls.Add(1)
	if key == s.key {
		s.keyGet.Add(1)
	}
}

func (s *storeCalls) Get(ctx context.Context, key string) (store.KV, error) {
	s.count(ctx, key)
	return s.Store.Get(ctx, key)
}

func (s *storeCalls) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	s.count(ctx, "")
	return s.Store.List(ctx, prefix)
}

func (s *storeCalls) Txn(ctx context.Context, ops []store.Op) error {
	s.count(ctx, "")
	return s.Store.Txn(ctx, ops)
}

// reset forgets what was counted.
func (s *storeCalls) reset() {
	s.calls.Store(0)
	s.keyGet.Store(0)
}

// hasEndpoint tells whether EnsureEndpoint made endpoint id's veth in vni.
func (f *fakePlane) hasEndpoint(vni uint32, id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eps[vni][dataplane.ShortID(id)]
}

// join calls Join with a context storeCalls counts.
func (e *env) join(netID, id string) error {
	_, err := e.d.Join(counted(), &network.JoinRequest{NetworkID: netID, EndpointID: id})
	return err
}

// createdEndpoint is a host h1 whose store calls s counts, with network
// net1 (198.19.1.0/24) and its endpoint ep1 created, not joined.
func createdEndpoint(t *testing.T) (*env, *storeCalls) {
	t.Helper()
	s := &storeCalls{Store: newEnv(t).store, key: keys.Endpoint("198.19.1.0_24", ep1)}
	e := newHost(t, s, "h1", "198.18.0.11")
	if err := e.d.CreateNetwork(context.Background(), createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	if err := e.createEndpoint(net1, ep1, "198.19.1.2/24", ""); err != nil {
		t.Fatal(err)
	}
	return e, s
}

// Join answers from the record CreateEndpoint just wrote: no store request
// (its one read had grown 1.8 → 5.3 ms from 100 to 1000 endpoints, issue
// #13). A second Join (after a Leave) reads the store again.
func TestJoinMakesNoStoreRequest(t *testing.T) {
	e, s := createdEndpoint(t)
	s.reset()
	if err := e.join(net1, ep1); err != nil {
		t.Fatal(err)
	}
	if n := s.calls.Load(); n != 0 {
		t.Errorf("Join after CreateEndpoint: %d store requests, want 0", n)
	}
	if !e.plane.hasEndpoint(DefaultVNIOffset, ep1) {
		t.Error("Join made no veth")
	}
	if n := e.d.fresh.size(); n != 0 {
		t.Errorf("after Join: %d records kept, want 0", n)
	}
	if err := e.d.Leave(context.Background(), &network.LeaveRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
		t.Fatal(err)
	}
	s.reset()
	if err := e.join(net1, ep1); err != nil {
		t.Fatalf("Join after Leave: %v", err)
	}
	if n := s.keyGet.Load(); n != 1 {
		t.Errorf("Join after Leave: %d reads of the endpoint's record, want 1", n)
	}
	e.deleteEndpoint(net1, ep1)
	e.deleteNetwork(net1)
	e.wantNoKeys()
}

// A plugin restarted between CreateEndpoint and Join has no record kept:
// Join reads it from the store, and makes the same veth.
func TestJoinAfterRestartReadsStore(t *testing.T) {
	e, s := createdEndpoint(t)
	e.d.Close()
	d, err := New(e.d.o) // the same store, data plane and host
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	s.reset()
	if _, err := d.Join(counted(), &network.JoinRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
		t.Fatalf("Join after a restart: %v", err)
	}
	if n := s.keyGet.Load(); n != 1 {
		t.Errorf("Join after a restart: %d reads of the endpoint's record, want 1", n)
	}
	if !e.plane.hasEndpoint(DefaultVNIOffset, ep1) {
		t.Error("Join made no veth")
	}
}

// No stale record: an endpoint deleted before its Join, or gone with its
// network, is not joined from memory; a Join naming another network does
// not take the record.
func TestJoinNoStaleRecord(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	if err := e.d.CreateNetwork(ctx, createReq(net2, "198.19.2.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	if err := e.createEndpoint(net1, ep1, "198.19.1.2/24", ""); err != nil {
		t.Fatal(err)
	}
	e.deleteEndpoint(net1, ep1)
	if n := e.d.fresh.size(); n != 0 {
		t.Errorf("after DeleteEndpoint: %d records kept, want 0", n)
	}
	if err := e.join(net1, ep1); !errkind.Is(err, errkind.NotFound) || !strings.Contains(err.Error(), ep1) {
		t.Errorf("Join of a deleted endpoint: %v, want not found naming it", err)
	}

	if err := e.createEndpoint(net1, ep1, "198.19.1.2/24", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.join(net2, ep1); !errkind.Is(err, errkind.NotFound) {
		t.Errorf("Join in another network: %v, want not found", err)
	}
	if e.plane.hasEndpoint(DefaultVNIOffset, ep1) || e.plane.hasEndpoint(DefaultVNIOffset+1, ep1) {
		t.Error("a veth was made for a Join in the wrong network")
	}
	e.deleteEndpoint(net1, ep1)

	if err := e.createEndpoint(net1, ep2, "198.19.1.3/24", ""); err != nil {
		t.Fatal(err)
	}
	e.deleteNetwork(net1)
	if n := e.d.fresh.size(); n != 0 {
		t.Errorf("after DeleteNetwork: %d records kept, want 0", n)
	}
	e.deleteNetwork(net2)
	e.wantNoKeys()
}

// Endpoints never joined nor deleted (a Docker that died between the two)
// are kept up to maxFresh; later ones are joined from the store.
func TestFreshEndpointsBounded(t *testing.T) {
	var f freshEndpoints
	for i := range maxFresh + 10 {
		f.put(&Endpoint{ID: fmt.Sprintf("%064x", i), Network: "n"})
	}
	if n := f.size(); n != maxFresh {
		t.Errorf("%d records kept, want %d", n, maxFresh)
	}
	f.dropNetwork("n")
	if n := f.size(); n != 0 {
		t.Errorf("after dropNetwork: %d records kept, want 0", n)
	}
}

// A reconcile round keeps the records of endpoints whose cluster record
// it finds, so their Join still makes no store request, and drops those
// whose record is gone (purged by another host, or by hand): their Join
// fails as its store read does. Before, every round dropped them all.
func TestJoinKeptAcrossReconcile(t *testing.T) {
	e, s := createdEndpoint(t)
	ctx := context.Background()
	if err := e.createEndpoint(net1, ep2, "198.19.1.3/24", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Delete(ctx, keys.Endpoint("198.19.1.0_24", ep2)); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.d.fresh.size(); n != 1 {
		t.Errorf("after a round that found one record gone: %d records kept, want 1", n)
	}
	s.reset()
	if err := e.join(net1, ep1); err != nil {
		t.Fatal(err)
	}
	if n := s.calls.Load(); n != 0 {
		t.Errorf("Join after a reconcile round: %d store requests, want 0", n)
	}
	if err := e.join(net1, ep2); !errkind.Is(err, errkind.NotFound) {
		t.Errorf("Join of an endpoint whose record was purged: %v, want not found", err)
	}
}

// `vxnet host forget` of this host run elsewhere (or another host's
// --forget-after) deletes its records without telling it: its next round
// finds them gone and drops what it kept, and the Join fails.
func TestJoinAfterForgetElsewhere(t *testing.T) {
	e1, _ := twoHosts(t)
	ctx := context.Background()
	if err := e1.createEndpoint(net1, ep1, "198.19.1.2/24", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := ForgetHost(ctx, e1.store, "h1"); err != nil {
		t.Fatal(err)
	}
	_ = e1.d.Reconcile(ctx) // may fail: namespaces of networks the store no longer lists
	if n := e1.d.fresh.size(); n != 0 {
		t.Errorf("after the round that followed a forget of this host: %d records kept, want 0", n)
	}
	if err := e1.join(net1, ep1); err == nil {
		t.Error("Join of an endpoint of a forgotten host succeeded")
	}
}

// A round that forgets a network whose cluster record is gone
// (forgetGone) deletes its endpoints' records after the round's check,
// and drops what it kept of them with them.
func TestJoinAfterForgetGone(t *testing.T) {
	e, _ := createdEndpoint(t)
	ctx := context.Background()
	if err := e.store.Delete(ctx, keys.Network("198.19.1.0_24")); err != nil {
		t.Fatal(err)
	}
	_ = e.d.Reconcile(ctx) // may fail: the namespace of a network it no longer has
	if _, err := e.store.Get(ctx, keys.Endpoint("198.19.1.0_24", ep1)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("endpoint record after forgetGone: %v, want not found", err)
	}
	if n := e.d.fresh.size(); n != 0 {
		t.Errorf("after forgetGone: %d records kept, want 0", n)
	}
}

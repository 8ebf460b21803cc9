package driver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/keys"
)

// gatedStore holds the next listing of prefix until release is closed,
// after closing entered.
type gatedStore struct {
	store.Store
	prefix  string
	entered chan struct{}
	release chan struct{}
	armed   atomic.Bool
}

func (g *gatedStore) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	if prefix == g.prefix && g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	return g.Store.List(ctx, prefix)
}

// reconcileHeld starts a Reconcile of e that stops in its listing of this
// host's endpoint copies (which reads every endpoint of the host), runs
// during(), then lets it finish and returns its error. The gate is armed
// before Reconcile starts and only Reconcile's goroutine lists that prefix.
func reconcileHeld(t *testing.T, e *env, g *gatedStore, during func()) error {
	t.Helper()
	g.entered, g.release = make(chan struct{}), make(chan struct{})
	g.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- e.d.Reconcile(context.Background()) }()
	released := false
	defer func() {
		if !released {
			close(g.release)
			<-done
		}
	}()
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("reconcile did not list this host's endpoint copies within 5 s")
	}
	during()
	close(g.release)
	released = true
	return <-done
}

// within fails the test when fn does not return within 2 s (it is left
// running; reconcileHeld's cleanup unblocks it).
func within(t *testing.T, what string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- fn() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("%s waited for reconcile's store reads (it must not hold the driver's lock alone while it reads)", what)
	}
}

func newGatedEnv(t *testing.T) (*env, *gatedStore) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	g := &gatedStore{Store: s, prefix: keys.HostEndpoints("h1")}
	e := newHost(t, g, "h1", "198.18.0.11")
	if err := e.d.CreateNetwork(context.Background(), createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	return e, g
}

func addJoined(e *env, id string, i int) error {
	ctx := context.Background()
	if _, err := e.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: id,
		Interface: &network.EndpointInterface{Address: fmt.Sprintf("198.19.1.%d/24", i+2)}}); err != nil {
		return err
	}
	_, err := e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: id})
	return err
}

// A reconcile round that finds nothing to repair reads every endpoint of
// the host, and of its networks: Joins go on meanwhile (issue #13: the
// round held the lock alone, and Join p99 grew with the endpoints).
func TestReconcileReadsDoNotBlockJoins(t *testing.T) {
	e, g := newGatedEnv(t)
	for i := range 5 {
		if err := addJoined(e, fmt.Sprintf("%064x", i+1), i); err != nil {
			t.Fatal(err)
		}
	}
	err := reconcileHeld(t, e, g, func() {
		within(t, "a Join during reconcile", func() error { return addJoined(e, ep1, 10) })
	})
	if err != nil {
		t.Fatalf("reconcile with a Join during its reads: %v", err)
	}
}

// An endpoint removed while the round reads looks like a port without a
// record to it: the round then repairs under the lock alone, which finds
// nothing to do, and brings back neither the record nor the port.
func TestReconcileRacingRemovalRepublishesNothing(t *testing.T) {
	e, g := newGatedEnv(t)
	if err := addJoined(e, ep1, 1); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err := reconcileHeld(t, e, g, func() {
		within(t, "Leave and DeleteEndpoint during reconcile", func() error {
			return errors.Join(e.d.Leave(ctx, &network.LeaveRequest{NetworkID: net1, EndpointID: ep1}),
				e.d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: net1, EndpointID: ep1}))
		})
	})
	if err != nil {
		t.Fatalf("reconcile with a removal during its reads: %v", err)
	}
	n, err := e.d.lookup(ctx, net1)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{keys.Endpoint(n.Key, ep1), keys.HostEndpoint("h1", ep1)} {
		if _, err := e.store.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after reconcile: %v, want not found (the removed endpoint came back)", k, err)
		}
	}
	if ports, err := e.plane.Endpoints(n.VNI); err != nil || len(ports) != 0 {
		t.Errorf("ports after reconcile: %v (%v), want none", ports, err)
	}
}

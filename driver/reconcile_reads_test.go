package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// readCounter counts the reads (Get, List) made through it.
type readCounter struct {
	store.Store
	reads atomic.Int64
}

func (c *readCounter) Get(ctx context.Context, key string) (store.KV, error) {
	c.reads.Add(1)
	return c.Store.Get(ctx, key)
}

func (c *readCounter) List(ctx context.Context, prefix string) ([]store.KV, uint64, error) {
	c.reads.Add(1)
	return c.Store.List(ctx, prefix)
}

// Reconcile holds the driver's lock, so every Join waits for it: its store
// round trips must not grow with the endpoints of a network (one read per
// endpoint made Join p99 grow to 1.8 s at 1000 endpoints, issue #13).
func TestReconcileReadsDoNotGrowWithEndpoints(t *testing.T) {
	reads := func(endpoints int) int64 {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		c := &readCounter{Store: s}
		e := newHost(t, c, "h1", "198.18.0.11")
		ctx := context.Background()
		if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
			t.Fatal(err)
		}
		joinEndpoints(t, e, endpoints)
		// The network's peer watcher reads the store too, following the
		// change log the endpoint adds wrote: let it catch up first.
		for last := int64(-1); last != c.reads.Load(); {
			last = c.reads.Load()
			time.Sleep(200 * time.Millisecond)
		}
		before := c.reads.Load()
		if err := e.d.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		return c.reads.Load() - before
	}
	few, many := reads(2), reads(40)
	if many != few {
		t.Fatalf("reconcile made %d store reads with 2 endpoints, %d with 40: it reads per endpoint", few, many)
	}
}

// A bridge port without an endpoint record (a Join cut short) goes; one a
// running container uses stays, reported; ports with records are kept.
func TestReconcileRemovesUnknownPortsOnly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: ep1,
		Interface: &network.EndpointInterface{Address: "198.19.1.5/24"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
		t.Fatal(err)
	}
	n, err := e.d.lookup(ctx, net1)
	if err != nil {
		t.Fatal(err)
	}
	cut, used := fmt.Sprintf("%064x", 1), fmt.Sprintf("%064x", 2)
	for _, id := range []string{cut, used} {
		if _, err := e.plane.EnsureEndpoint(dataplane.EndpointConfig{VNI: n.VNI, ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	e.plane.take(used)
	wantErr(t, e.d.Reconcile(ctx), "a running container uses it")
	ports, err := e.plane.Endpoints(n.VNI)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{dataplane.ShortID(used), dataplane.ShortID(ep1)}
	slices.Sort(want)
	if !slices.Equal(ports, want) {
		t.Fatalf("ports after reconcile %v, want %v (the cut-short one gone)", ports, want)
	}
}

// joinEndpoints creates and joins n endpoints on net1 (198.19.1.0/24),
// with IDs 1…n and addresses from .2 on, as dockerd would.
func joinEndpoints(t *testing.T, e *env, n int) {
	t.Helper()
	for i := range n {
		joinEndpoint(t, e, i+1)
	}
}

// endpointID is the ID of endpoint i of joinEndpoints: distinct in its
// first 12 characters, as Docker's random IDs are (ports are named by
// them: dataplane.ShortID).
func endpointID(i int) string { return fmt.Sprintf("%012x%052x", i, 0) }

// joinEndpoint creates and joins endpoint i of joinEndpoints.
func joinEndpoint(t *testing.T, e *env, i int) {
	t.Helper()
	ctx := context.Background()
	id := endpointID(i)
	if _, err := e.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: id,
		Interface: &network.EndpointInterface{Address: fmt.Sprintf("198.19.1.%d/24", i+1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: id}); err != nil {
		t.Fatal(err)
	}
}

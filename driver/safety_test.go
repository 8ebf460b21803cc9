package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Docker's default IPAM hands out the same addresses on every host: on a
// store shared by hosts, a local-scope network must use vxnet's IPAM.
func TestDefaultIPAMOnMultiHostStore(t *testing.T) {
	for _, tt := range []struct {
		name      string
		multiHost bool
		scope     scope.Scope
		space     string
		refused   bool
	}{
		{"consul, local scope, Docker's IPAM", true, network.LocalScope, "LocalDefault", true},
		{"consul, local scope, vxnet's IPAM", true, network.LocalScope, "vxnet-local", false},
		{"consul, swarm, Docker's IPAM", true, network.GlobalScope, "GlobalDefault", false},
		{"bbolt, Docker's IPAM", false, network.LocalScope, "LocalDefault", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.d.o.MultiHost, e.d.o.Scope = tt.multiHost, tt.scope
			r := createReq(net1, "198.19.1.0/24", "", nil)
			r.IPv4Data[0].AddressSpace = tt.space
			err := e.d.CreateNetwork(context.Background(), r)
			if !tt.refused {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, "--ipam-driver vxnet")
			if k := e.keys(); len(k) != 0 || len(e.plane.nets) != 0 {
				t.Fatalf("left behind: store %v kernel %v", k, e.plane.nets)
			}
		})
	}
}

// createEndpoint creates endpoint id on the host's Docker network netID.
func (e *env) createEndpoint(netID, id, addr, mac string) error {
	_, err := e.d.CreateEndpoint(context.Background(), &network.CreateEndpointRequest{NetworkID: netID, EndpointID: id,
		Interface: &network.EndpointInterface{Address: addr, MacAddress: mac}})
	return err
}

func (e *env) deleteEndpoint(netID, id string) {
	e.t.Helper()
	if err := e.d.DeleteEndpoint(context.Background(), &network.DeleteEndpointRequest{NetworkID: netID, EndpointID: id}); err != nil {
		e.t.Fatal(err)
	}
}

// wantNoKeys fails the test when the store holds any key.
func (e *env) wantNoKeys() {
	e.t.Helper()
	if k := e.keys(); len(k) != 0 {
		e.t.Fatalf("keys left: %v", k)
	}
}

func (e *env) deleteNetwork(netID string) {
	e.t.Helper()
	if err := e.d.DeleteNetwork(context.Background(), &network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		e.t.Fatal(err)
	}
}

// twoHosts creates the network 198.19.1.0/24 on h1 (net1) and h2 (net2).
func twoHosts(t *testing.T) (*env, *env) {
	e1 := newEnv(t)
	e2 := newHost(t, e1.store, "h2", "198.18.0.12")
	for e, id := range map[*env]string{e1: net1, e2: net2} {
		if err := e.d.CreateNetwork(context.Background(), createReq(id, "198.19.1.0/24", "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	return e1, e2
}

// A MAC belongs to one endpoint of a network at a time; a second endpoint
// asking for it is refused, naming the MAC and its holder, and leaves
// nothing behind.
func TestMACUniquePerNetwork(t *testing.T) {
	e1, e2 := twoHosts(t)
	const mac = "02:00:00:00:00:07"
	if err := e1.createEndpoint(net1, ep1, "198.19.1.2/24", mac); err != nil {
		t.Fatal(err)
	}
	before := e1.keys()
	wantErr(t, e2.createEndpoint(net2, ep2, "198.19.1.3/24", mac), `MAC address 02:00:00:00:00:07 is already used by endpoint "`+ep1+`" (host h1)`)
	if after := e1.keys(); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatalf("refused endpoint changed the store: %v -> %v", before, after)
	}
	rec, _, err := store.GetJSON[MACRecord](context.Background(), e1.store, keys.MAC("198.19.1.0_24", mac))
	if err != nil || rec.Endpoint != ep1 {
		t.Fatalf("MAC key = %+v, %v; want it held by %s", rec, err, ep1)
	}
	e1.deleteEndpoint(net1, ep1)
	if err := e2.createEndpoint(net2, ep2, "198.19.1.3/24", mac); err != nil {
		t.Fatalf("MAC not released by DeleteEndpoint: %v", err)
	}
	// An endpoint recorded before MAC keys existed has none: its
	// removal must not fail for it.
	if err := e2.store.Delete(context.Background(), keys.MAC("198.19.1.0_24", mac)); err != nil {
		t.Fatal(err)
	}
	e2.deleteEndpoint(net2, ep2)
	e1.deleteNetwork(net1)
	e2.deleteNetwork(net2)
	e1.wantNoKeys()
}

// lostAnswers applies the next CAS write under prefix once armed, and
// answers it with ErrConflict, as a Consul call retried after a lost
// answer does.
type lostAnswers struct {
	store.Store
	prefix string
	armed  atomic.Bool
	lost   atomic.Int32
}

func (s *lostAnswers) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	i, err := s.Store.CAS(ctx, key, value, index)
	if err == nil && strings.HasPrefix(key, s.prefix) && s.armed.CompareAndSwap(true, false) {
		s.lost.Add(1)
		return 0, store.ErrConflict
	}
	return i, err
}

// Txn refuses once armed, writing nothing, so CreateEndpoint takes its
// record-by-record path, whose MAC write then loses its answer (CAS). A
// lost answer of the transaction itself is the backend's (storetest).
func (s *lostAnswers) Txn(ctx context.Context, ops []store.Op) error {
	if s.armed.Load() {
		return fmt.Errorf("txn %q: refused by the test: %w", store.TxnKey(ops), store.ErrConflict)
	}
	return s.Store.Txn(ctx, ops)
}

// A MAC write whose answer was lost is recognised as the create's own by
// its nonce; a rolled-back create releases the MAC; a MAC key whose holder
// never wrote its record is taken over only after staleMACAfter.
func TestMACKeyLifecycle(t *testing.T) {
	lossy := &lostAnswers{Store: newEnv(t).store, prefix: keys.AllMACs}
	e := newHost(t, lossy, "h1", "198.18.0.11")
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	lossy.armed.Store(true)
	if err := e.createEndpoint(net1, ep1, "198.19.1.2/24", ""); err != nil || lossy.lost.Load() != 1 {
		t.Fatalf("create with a lost answer: %v (%d answers lost)", err, lossy.lost.Load())
	}
	e.deleteEndpoint(net1, ep1)

	// The endpoint record exists already (a retried create): the MAC taken
	// for the attempt goes with it.
	if _, err := e.store.Put(ctx, keys.HostEndpoint(e.d.o.HostID, ep2), []byte(`{"id":"`+ep2+`"}`)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, e.createEndpoint(net1, ep2, "198.19.1.3/24", ""), "already exists")
	if _, err := e.store.Get(ctx, keys.MAC("198.19.1.0_24", "02:42:c6:13:01:03")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MAC key after a failed create: %v, want it gone", err)
	}
	if err := e.store.Delete(ctx, keys.HostEndpoint(e.d.o.HostID, ep2)); err != nil {
		t.Fatal(err)
	}

	// The cases below switch the driver's scope, which the network's peer
	// watcher reads: stop it first (it has no part in the MAC keys).
	e.d.stopWatch("198.19.1.0_24")
	const mac = "02:00:00:00:00:09"
	for _, tt := range []struct {
		name  string
		since time.Time
		scope scope.Scope
		taken bool
	}{
		{"create in flight", time.Now(), "local", false},
		{"create killed", time.Now().Add(-2 * staleMACAfter), "local", true},
		// Swarm's manager gave the address (and its MAC) to a task here:
		// it takes over from another host's older task.
		{"swarm task of another host", time.Now(), "global", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.d.o.Scope = tt.scope
			defer func() { e.d.o.Scope = scope.Local }()
			if err := store.PutJSON(ctx, e.store, keys.MAC("198.19.1.0_24", mac), MACRecord{Endpoint: ep2, Host: "h9", Since: tt.since, Nonce: "x"}); err != nil {
				t.Fatal(err)
			}
			err := e.createEndpoint(net1, ep1, "198.19.1.2/24", mac)
			if !tt.taken {
				wantErr(t, err, "already used by endpoint")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e.deleteEndpoint(net1, ep1)
		})
	}
	e.deleteNetwork(net1)
	e.wantNoKeys()
}

// A create whose explicit VNI is held for the same network by a create on
// another host waits for that network; when its record never comes (that
// create was killed), it fails after joinWait naming the holder, and
// leaves nothing of its own behind.
func TestCreateWaitsForTheSameNetwork(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := store.PutJSON(ctx, e.store, keys.VNI(600), VNIRecord{Network: "198.19.1.0_24", Host: "h9"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", map[string]interface{}{OptVNI: "600"}))
	wantErr(t, err, "VNI 600: network 198.19.1.0_24 is being created by host h9, whose network record did not appear within 5s")
	if took := time.Since(start); took < joinWait {
		t.Fatalf("gave up after %s, before joinWait", took)
	}
	if k := e.keys(); strings.Join(k, " ") != keys.VNI(600) || len(e.plane.nets) != 0 {
		t.Fatalf("left behind: store %v kernel %v", k, e.plane.nets)
	}
}

package driver

import (
	"context"
	"io"
	"net/netip"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
)

func newGlobalHost(t *testing.T, s store.Store, id, vtep string) *env {
	l := logrus.New()
	l.SetOutput(io.Discard)
	p := newFakePlane()
	d, err := New(Options{Store: s, Plane: p, HostID: id, VTEP: netip.MustParseAddr(vtep), Port: 4789, MTU: 1450, Scope: "global", Log: logrus.NewEntry(l)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return &env{t: t, store: s, plane: p, d: d}
}

// TestSwarmGlobalScope replays a swarm's driver calls (moby v20.10.24):
// AllocateNetwork on the manager, whose answer's options become the
// generic options of CreateNetwork on every node with a task, with the
// same swarm network ID and the manager's subnet and gateway; endpoints
// arrive with their addresses assigned.
func TestSwarmGlobalScope(t *testing.T) {
	const net1 = "4r5ioafuq791o5s1mul33es0f" // swarm network IDs are base 36
	e1 := newEnv(t)
	m := newGlobalHost(t, e1.store, "h1", "198.18.0.11")
	w := newGlobalHost(t, e1.store, "h2", "198.18.0.12")
	ctx := context.Background()
	caps, err := m.d.GetCapabilities(ctx)
	if err != nil || caps.Scope != "global" || caps.ConnectivityScope != "global" {
		t.Fatalf("GetCapabilities = %+v, %v", caps, err)
	}
	ipv4 := []network.IPAMData{{AddressSpace: "vxnet-global", Pool: "198.19.4.0/24", Gateway: "198.19.4.1/24"}}
	_, err = m.d.AllocateNetwork(ctx, &network.AllocateNetworkRequest{NetworkID: net1, Options: map[string]string{"vxnet.bogus": "1"}, IPv4Data: ipv4})
	wantErr(t, err, `unknown option "vxnet.bogus"`)
	alloc, err := m.d.AllocateNetwork(ctx, &network.AllocateNetworkRequest{NetworkID: net1, Options: map[string]string{OptVNI: "5000"}, IPv4Data: ipv4})
	if err != nil || alloc.Options[OptVNI] != "5000" {
		t.Fatalf("AllocateNetwork = %+v, %v (the options must come back)", alloc, err)
	}
	generic := map[string]interface{}{}
	for k, v := range alloc.Options {
		generic[k] = v
	}
	eps := map[*env]struct{ id, addr string }{m: {ep1, "198.19.4.2/24"}, w: {ep2, "198.19.4.3/24"}}
	for _, h := range []*env{m, w} {
		if err := h.d.CreateNetwork(ctx, createReq(net1, "198.19.4.0/24", "198.19.4.1/24", generic)); err != nil {
			t.Fatalf("%s: CreateNetwork: %v", h.d.o.HostID, err)
		}
		if _, ok := h.plane.nets[5000]; !ok {
			t.Fatalf("%s: no kernel network with VNI 5000: %v", h.d.o.HostID, h.plane.nets)
		}
		ep := eps[h]
		if _, err := h.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: ep.id,
			Interface: &network.EndpointInterface{Address: ep.addr}}); err != nil {
			t.Fatalf("%s: CreateEndpoint: %v", h.d.o.HostID, err)
		}
		if _, err := h.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep.id, SandboxKey: "/x"}); err != nil {
			t.Fatalf("%s: Join: %v", h.d.o.HostID, err)
		}
	}
	for _, h := range []*env{m, w} {
		ep := eps[h]
		if err := h.d.Leave(ctx, &network.LeaveRequest{NetworkID: net1, EndpointID: ep.id}); err != nil {
			t.Fatal(err)
		}
		if err := h.d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: net1, EndpointID: ep.id}); err != nil {
			t.Fatal(err)
		}
		if err := h.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.d.FreeNetwork(ctx, &network.FreeNetworkRequest{NetworkID: net1}); err != nil {
		t.Fatal(err)
	}
	if k := e1.keys(); len(k) != 0 {
		t.Fatalf("store keys left: %v", k)
	}
}

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		what, id string
		ok       bool
	}{
		{"network", "0123456789ab", true},
		{"network", "4r5ioafuq791o5s1mul33es0f", true},
		{"network", "4r5ioafuq791o5s1mul33es0", false},
		{"network", "4R5IOAFUQ791O5S1MUL33ES0F", false},
		{"network", "4r5ioafuq791o5s1mul33es0/", false},
		{"endpoint", "4r5ioafuq791o5s1mul33es0f", false},
		{"endpoint", ep1, true},
	} {
		if err := validID(tt.what, tt.id); (err == nil) != tt.ok {
			t.Errorf("validID(%s, %q) = %v, want ok=%v", tt.what, tt.id, err, tt.ok)
		}
	}
}

package driver

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

const (
	net1 = "1111111111111111111111111111111111111111111111111111111111111111"
	net2 = "2222222222222222222222222222222222222222222222222222222222222222"
	ep1  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	ep2  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

type env struct {
	t     *testing.T
	store store.Store
	plane *fakePlane
	pools *fakePools
	d     *Driver
}

func newEnv(t *testing.T) *env {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return newHost(t, s, "h1", "198.18.0.11")
}

func newHost(t *testing.T, s store.Store, id, vtep string) *env {
	l := logrus.New()
	l.SetOutput(io.Discard)
	p, pools := newFakePlane(), newFakePools()
	d, err := New(Options{Store: s, Plane: p, Pools: pools, HostID: id, VTEP: netip.MustParseAddr(vtep), Port: 4789, MTU: 1450, Log: logrus.NewEntry(l)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close) // before the store closes: cleanups run last-in first
	return &env{t: t, store: s, plane: p, pools: pools, d: d}
}

func createReq(id, subnet, gw string, generic map[string]interface{}) *network.CreateNetworkRequest {
	opts := map[string]interface{}{"com.docker.network.enable_ipv6": false}
	if generic != nil {
		opts[genericOptions] = generic
	}
	return &network.CreateNetworkRequest{NetworkID: id, Options: opts,
		IPv4Data: []*network.IPAMData{{AddressSpace: "vxnet-local", Pool: subnet, Gateway: gw}}}
}

func (e *env) keys() []string {
	kvs, _, err := e.store.List(context.Background(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Key)
	}
	return out
}

func wantErr(t *testing.T, err error, has string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), has) {
		t.Fatalf("error %v, want one containing %q", err, has)
	}
}

func TestNetworkAndEndpointLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "198.19.1.1/24", map[string]interface{}{OptVNI: "300"})); err != nil {
		t.Fatal(err)
	}
	cfg, ok := e.plane.nets[300]
	if !ok || cfg.MTU != 1450 || cfg.Addresses[0].String() != "198.19.1.1/24" || cfg.LocalIP.String() != "198.18.0.11" {
		t.Fatalf("kernel network = %+v, %v", cfg, ok)
	}
	resp, err := e.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: ep1,
		Interface: &network.EndpointInterface{Address: "198.19.1.2/24"}})
	if err != nil || resp.Interface == nil || resp.Interface.MacAddress != "02:42:c6:13:01:02" {
		t.Fatalf("CreateEndpoint = %+v, %v", resp, err)
	}
	j, err := e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep1, SandboxKey: "/var/run/docker/netns/x"})
	if err != nil || j.InterfaceName.SrcName != "vxc"+ep1[:12] || j.InterfaceName.DstPrefix != "eth" || j.Gateway != "" {
		t.Fatalf("Join = %+v, %v", j, err)
	}
	info, err := e.d.EndpointInfo(ctx, &network.InfoRequest{NetworkID: net1, EndpointID: ep1})
	if err != nil || info.Value["vxnet.vni"] != "300" {
		t.Fatalf("EndpointInfo = %+v, %v", info, err)
	}
	if err := e.d.Leave(ctx, &network.LeaveRequest{NetworkID: net1, EndpointID: ep1}); err != nil || e.plane.endpointCount() != 0 {
		t.Fatalf("Leave: %v, %d veths left", err, e.plane.endpointCount())
	}
	for range 2 {
		if err := e.d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := e.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net1}); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.plane.nets) != 0 || len(e.keys()) != 0 {
		t.Fatalf("left behind: kernel %v, store %v", e.plane.nets, e.keys())
	}
}

func TestCreateNetworkErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "198.19.1.1/24", map[string]interface{}{OptVNI: "300"})); err != nil {
		t.Fatal(err)
	}
	before := e.keys()
	for _, tt := range []struct {
		name string
		req  *network.CreateNetworkRequest
		want string
		kind errkind.Kind // what the server answers Docker by
	}{
		{"unknown option", createReq(net2, "198.19.2.0/24", "", map[string]interface{}{"vxnet.foo": "1"}), `unknown option "vxnet.foo": vxnet accepts vxnet.vni, com.docker.network.driver.mtu`, errkind.BadRequest},
		{"vni range", createReq(net2, "198.19.2.0/24", "", map[string]interface{}{OptVNI: "16777216"}), "out of range 1..16777215", errkind.BadRequest},
		{"vni not a number", createReq(net2, "198.19.2.0/24", "", map[string]interface{}{OptVNI: "x"}), `"x" is not a number`, errkind.BadRequest},
		{"mtu range", createReq(net2, "198.19.2.0/24", "", map[string]interface{}{OptMTU: "70000"}), "out of range 576..65535", errkind.BadRequest},
		{"vni conflict", createReq(net2, "198.19.2.0/24", "", map[string]interface{}{OptVNI: "300"}), "VNI 300 is already used by vxnet network 198.19.1.0/24", errkind.Conflict},
		{"overlap", createReq(net2, "198.19.1.128/25", "", nil), "overlaps subnet 198.19.1.0/24", errkind.Conflict},
		{"same subnet twice on host", createReq(net2, "198.19.1.0/24", "198.19.1.1/24", nil), "already used by vxnet network", errkind.Conflict},
		{"other gateway", createReq(net2, "198.19.1.0/24", "198.19.1.9/24", nil), "gateways [198.19.1.9/24] differ", errkind.Conflict},
		{"no subnet", &network.CreateNetworkRequest{NetworkID: net2}, "network has no subnet", errkind.BadRequest},
		{"bad id", createReq("xyz", "198.19.2.0/24", "", nil), `bad network ID "xyz"`, errkind.BadRequest},
		{"bad pool", createReq(net2, "198.19.2.1/24", "", nil), `bad pool "198.19.2.1/24"`, errkind.BadRequest},
		{"generic not strings", createReq(net2, "198.19.2.0/24", "", map[string]interface{}{OptVNI: 5.0}), "is not a string", errkind.BadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := e.d.CreateNetwork(ctx, tt.req)
			wantErr(t, err, tt.want)
			if got := errkind.Of(err); got != tt.kind {
				t.Fatalf("error %q is of kind %s, want %s", err, got, tt.kind)
			}
			if after := e.keys(); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatalf("store changed: %v -> %v", before, after)
			}
			if len(e.plane.nets) != 1 {
				t.Fatalf("kernel networks: %v", e.plane.nets)
			}
		})
	}
}

// A failing kernel step rolls the store back.
func TestCreateNetworkRollback(t *testing.T) {
	e := newEnv(t)
	e.plane.failNext = errors.New("injected")
	wantErr(t, e.d.CreateNetwork(context.Background(), createReq(net1, "198.19.1.0/24", "", nil)), "injected")
	if k := e.keys(); len(k) != 0 || len(e.plane.nets) != 0 {
		t.Fatalf("left behind: store %v kernel %v", k, e.plane.nets)
	}
}

func TestEndpointErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	ce := func(id, addr, mac string) error {
		_, err := e.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: id,
			Interface: &network.EndpointInterface{Address: addr, MacAddress: mac}})
		return err
	}
	wantErr(t, ce(ep1, "198.19.9.2/24", ""), "not in the network's subnets")
	wantErr(t, ce(ep1, "nonsense", ""), `bad address "nonsense"`)
	wantErr(t, ce(ep1, "", ""), "no address assigned")
	wantErr(t, ce(ep1, "198.19.1.2/24", "01:00:00:00:00:01"), "multicast")
	wantErr(t, ce(ep1, "198.19.1.2/24", "zz"), `bad MAC address "zz"`)
	wantErr(t, ce("NOTHEX", "198.19.1.2/24", ""), "bad endpoint ID")
	if err := ce(ep1, "198.19.1.2/24", "02:00:00:00:00:07"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, ce(ep1, "198.19.1.2/24", ""), "already exists")
	_, err := e.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net2, EndpointID: ep2, Interface: &network.EndpointInterface{Address: "198.19.1.3/24"}})
	wantErr(t, err, "is not a vxnet network on this host")
	_, err = e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep2})
	wantErr(t, err, "not found")
	e.plane.failNext = errors.New("injected")
	_, err = e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep1})
	wantErr(t, err, "injected")
}

// Two hosts on one store form one cluster network; the last host to leave
// removes it.
func TestTwoHosts(t *testing.T) {
	e1 := newEnv(t)
	e2 := newHost(t, e1.store, "h2", "198.18.0.12")
	ctx := context.Background()
	if err := e1.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "198.19.1.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	if err := e2.d.CreateNetwork(ctx, createReq(net2, "198.19.1.0/24", "198.19.1.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	if len(e1.plane.nets) != 1 || len(e2.plane.nets) != 1 {
		t.Fatal("a host has no kernel network")
	}
	for vni := range e1.plane.nets {
		if _, ok := e2.plane.nets[vni]; !ok || vni != DefaultVNIOffset {
			t.Fatalf("hosts disagree on the VNI: %v %v", e1.plane.nets, e2.plane.nets)
		}
	}
	wantErr(t, e2.d.CreateNetwork(ctx, createReq(net2, "198.19.1.0/25", "", nil)), "overlaps")
	if err := e1.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.d.lookup(ctx, net2); err != nil {
		t.Fatalf("network gone for h2: %v", err)
	}
	if err := e2.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net2}); err != nil {
		t.Fatal(err)
	}
	if k := e1.keys(); len(k) != 0 {
		t.Fatalf("store keys left: %v", k)
	}
}

// Reconcile rebuilds missing namespaces and removes orphans.
func TestReconcile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", map[string]interface{}{OptVNI: "10"})); err != nil {
		t.Fatal(err)
	}
	e.plane.mu.Lock()                   // the peer goroutine reads these
	delete(e.plane.nets, 10)            // namespace lost
	e.plane.nets[77] = e.plane.nets[10] // orphan namespace
	e.plane.eps[77] = map[string]bool{}
	e.plane.mu.Unlock()
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	e.plane.mu.Lock()
	_, recreated := e.plane.nets[10]
	_, orphan := e.plane.nets[77]
	e.plane.eps[10]["cccccccccccc"] = true // orphan veth
	e.plane.mu.Unlock()
	if !recreated {
		t.Fatal("missing namespace not recreated")
	}
	if orphan {
		t.Fatal("orphan namespace not removed")
	}
	if err := e.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if e.plane.endpointCount() != 0 {
		t.Fatal("orphan veth not removed")
	}
}

// failingStore fails every call, as Consul does when it is down.
type failingStore struct{ store.Store }

func (failingStore) Get(context.Context, string) (store.KV, error) {
	return store.KV{}, errors.New("consul down")
}

// A store outage is not "unknown network": DeleteNetwork must fail, so
// Docker does not forget a network vxnet still has.
func TestDeleteNetworkStoreDown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	down := &Driver{o: e.d.o, life: e.d.life, watchers: map[string]*watcher{}}
	down.o.Store = failingStore{e.store}
	wantErr(t, down.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net1}), "consul down")
	if len(e.plane.nets) != 1 {
		t.Fatal("namespace removed although the delete failed")
	}
	if err := e.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net1}); err != nil {
		t.Fatal(err)
	}
}

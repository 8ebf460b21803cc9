package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/cmd/vxnet/server"
	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/driver/simplane"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
)

// simHost is one simulated Docker host: the plugin's agent on a recording
// data plane, its own Consul client, and the requests Docker would send.
type simHost struct {
	idx     int
	id      string
	vtep    netip.Addr
	st      *simStore
	plane   *simplane.Plane
	ag      *agent
	stop    context.CancelFunc
	answers atomic.Bool // its underlay answers liveness probes
	nets    map[int]simNet
}

// simNet is one network as Docker on a host knows it.
type simNet struct {
	dockerID, poolID string
	vni              uint32
}

// simAgentTimes are the plugin's defaults: the simulation measures them.
var simAgentTimes = agentOptions{
	ReconcileInterval: 5 * time.Second, HeartbeatInterval: 3 * time.Second,
	DeadAfter: 10 * time.Second, ForgetAfter: 24 * time.Hour,
}

// startSimHost opens the host's store, starts its agent and returns it.
func startSimHost(ctx context.Context, s *sim, idx int) (*simHost, error) {
	raw, err := openStore(ctx, s.storeURI(idx))
	if err != nil {
		return nil, err
	}
	h := &simHost{
		idx: idx, id: fmt.Sprintf("sim-%04d", idx),
		vtep: netip.AddrFrom4([4]byte{198, 18, byte(1 + idx/250), byte(1 + idx%250)}),
		st:   newSimStore(raw, &s.counts), nets: map[int]simNet{},
	}
	h.answers.Store(true)
	h.plane = simplane.New(func(vni uint32, peers []dataplane.Peer, at time.Time) { s.track.programmed(idx, peers, at) })
	actx, stop := context.WithCancel(ctx)
	o := simAgentTimes
	o.Store, o.Plane, o.HostID, o.VTEP = h.st, h.plane, h.id, h.vtep
	o.Port, o.MTU, o.Scope, o.MultiHost = 4789, 1450, scope.Local, true
	o.Log = s.log.WithField("host", h.id)
	o.Probe = s.probe
	if h.ag, err = startAgent(actx, o); err != nil {
		stop()
		raw.Close()
		return nil, fmt.Errorf("simulated host %s: %w", h.id, err)
	}
	h.stop = func() {
		stop()
		h.ag.stop()
		_ = raw.Close()
	}
	return h, nil
}

// createNetwork sends what Docker sends for `docker network create -d
// vxnet --ipam-driver vxnet --subnet S`: RequestPool, the gateway's
// RequestAddress, CreateNetwork.
func (h *simHost) createNetwork(ctx context.Context, n int, subnet netip.Prefix) error {
	pool, err := bounded(ctx, func(ctx context.Context) (*ipam.RequestPoolResponse, error) {
		return h.ag.ip.RequestPool(ctx, &ipam.RequestPoolRequest{AddressSpace: "vxnet-local", Pool: subnet.String()})
	})
	if err != nil {
		return fmt.Errorf("host %s: request pool %s: %w", h.id, subnet, err)
	}
	gw, err := bounded(ctx, func(ctx context.Context) (*ipam.RequestAddressResponse, error) {
		return h.ag.ip.RequestAddress(ctx, &ipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{requestAddressTypeOption: gatewayAddressType}})
	})
	if err != nil {
		return fmt.Errorf("host %s: gateway of %s: %w", h.id, subnet, err)
	}
	id := randomID()
	_, err = bounded(ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, h.ag.drv.CreateNetwork(ctx, &network.CreateNetworkRequest{
			NetworkID: id,
			Options:   map[string]interface{}{"com.docker.network.enable_ipv6": false, "com.docker.network.generic": map[string]interface{}{}},
			IPv4Data:  []*network.IPAMData{{AddressSpace: "vxnet-local", Pool: subnet.String(), Gateway: gw.Address}},
		})
	})
	if err != nil {
		return fmt.Errorf("host %s: create network %s: %w", h.id, subnet, err)
	}
	vni, ok := h.plane.VNIOf(subnet)
	if !ok {
		return fmt.Errorf("host %s: network %s created but not in the data plane", h.id, subnet)
	}
	h.nets[n] = simNet{dockerID: id, poolID: pool.PoolID, vni: vni}
	return nil
}

// Docker's RequestAddress option for a network's gateway.
const (
	requestAddressTypeOption = "RequestAddressType"
	gatewayAddressType       = "com.docker.network.gateway"
)

// addEndpoint sends what Docker sends for `docker run --network N`:
// RequestAddress, CreateEndpoint, Join. It returns the address and when
// the endpoint's record was written (CreateEndpoint returned).
func (h *simHost) addEndpoint(ctx context.Context, n int) (netip.Addr, time.Time, error) {
	sn := h.nets[n]
	a, err := bounded(ctx, func(ctx context.Context) (*ipam.RequestAddressResponse, error) {
		return h.ag.ip.RequestAddress(ctx, &ipam.RequestAddressRequest{PoolID: sn.poolID})
	})
	if err != nil {
		return netip.Addr{}, time.Time{}, fmt.Errorf("host %s: request address: %w", h.id, err)
	}
	p, err := netip.ParsePrefix(a.Address)
	if err != nil {
		return netip.Addr{}, time.Time{}, fmt.Errorf("host %s: address %q: %w", h.id, a.Address, err)
	}
	ep := randomID()
	if _, err := bounded(ctx, func(ctx context.Context) (*network.CreateEndpointResponse, error) {
		return h.ag.drv.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: sn.dockerID, EndpointID: ep, Interface: &network.EndpointInterface{Address: a.Address}})
	}); err != nil {
		return netip.Addr{}, time.Time{}, fmt.Errorf("host %s: create endpoint: %w", h.id, err)
	}
	written := time.Now()
	if _, err := bounded(ctx, func(ctx context.Context) (*network.JoinResponse, error) {
		return h.ag.drv.Join(ctx, &network.JoinRequest{NetworkID: sn.dockerID, EndpointID: ep, SandboxKey: "/var/run/docker/netns/sim" + ep[:12]})
	}); err != nil {
		return netip.Addr{}, time.Time{}, fmt.Errorf("host %s: join: %w", h.id, err)
	}
	return p.Addr(), written, nil
}

// bounded runs one callback under the deadline the plugin's server gives
// every Docker callback (server.DefaultTimeout), so the store's calls in
// it retry within the same bound as in a real plugin.
func bounded[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, server.DefaultTimeout)
	defer cancel()
	return fn(ctx)
}

// cut makes the host silent (store unreachable, underlay answering) or
// gone (neither), or whole again.
func (h *simHost) cut(store, underlay bool) {
	h.st.cut.Store(store)
	h.answers.Store(!underlay)
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// quietLogger is the simulation's logger: the agents' warnings about cut
// off hosts are the point of the run, not news.
func quietLogger(level string) (*logrus.Entry, error) {
	l := logrus.New()
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	l.SetLevel(lvl)
	return logrus.NewEntry(l), nil
}

var (
	_ store.Ephemeral = (*simStore)(nil)
	_ store.Locker    = (*simStore)(nil)
)

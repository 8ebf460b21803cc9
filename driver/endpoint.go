package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// CreateEndpoint records the endpoint in the cluster: its addresses (given
// by IPAM), its MAC (generated when Docker has none; refused when another
// endpoint of the network holds it) and this host's VTEP.
func (d *Driver) CreateEndpoint(ctx context.Context, r *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	if err := validID("endpoint", r.EndpointID); err != nil {
		return nil, err
	}
	if r.Interface == nil {
		return nil, errkind.Errorf(errkind.BadRequest, "endpoint %q: no interface in request (vxnet needs an IPAM-assigned address)", r.EndpointID)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n, err := d.lookup(ctx, r.NetworkID)
	if err != nil {
		return nil, err
	}
	ep, err := d.parseEndpoint(n, r)
	if err != nil {
		return nil, err
	}
	if d.o.Admit != nil {
		if err := d.o.Admit(ctx, r.NetworkID, ep.Addrs); err != nil {
			return nil, err
		}
	}
	if err := d.recordEndpoint(ctx, ep); err != nil {
		return nil, err
	}
	d.fresh.put(ep)
	d.logNet(n).WithFields(map[string]any{"endpoint": ep.ID, "addrs": ep.Addrs, "mac": ep.MAC}).Info("endpoint created")
	resp := &network.CreateEndpointResponse{}
	if r.Interface.MacAddress == "" {
		resp.Interface = &network.EndpointInterface{MacAddress: ep.MAC}
	}
	return resp, nil
}

// publish writes this host's copy of the endpoint, then the cluster record
// other hosts watch; a failure leaves neither.
func (d *Driver) publish(ctx context.Context, ep *Endpoint) error {
	if err := store.CreateJSON(ctx, d.o.Store, keys.HostEndpoint(d.o.HostID, ep.ID), ep); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errkind.Errorf(errkind.Conflict, "endpoint %q already exists", ep.ID)
		}
		return fmt.Errorf("record endpoint %q: %w", ep.ID, err)
	}
	err := store.CreateJSON(ctx, d.o.Store, keys.Endpoint(ep.Network, ep.ID), ep)
	if err == nil {
		return nil
	}
	if derr := d.o.Store.Delete(context.WithoutCancel(ctx), keys.HostEndpoint(d.o.HostID, ep.ID)); derr != nil {
		d.o.Log.WithError(derr).WithField("endpoint", ep.ID).Error("roll back endpoint copy")
	}
	if errors.Is(err, store.ErrConflict) {
		return errkind.Errorf(errkind.Conflict, "endpoint %q already exists in network %s", ep.ID, ep.Network)
	}
	return fmt.Errorf("record endpoint %q: %w", ep.ID, err)
}

func (d *Driver) parseEndpoint(n *Network, r *network.CreateEndpointRequest) (*Endpoint, error) {
	ep := &Endpoint{ID: r.EndpointID, Network: n.Key, DockerNet: r.NetworkID, Host: d.o.HostID, VTEP: d.o.VTEP, Created: time.Now().UTC()}
	for _, s := range []string{r.Interface.Address, r.Interface.AddressIPv6} {
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("endpoint %q: bad address %q: %w", r.EndpointID, s, err)
		}
		if !inAny(n.Subnets, p.Addr()) {
			return nil, errkind.Errorf(errkind.BadRequest, "endpoint %q: address %s is not in the network's subnets %v", r.EndpointID, p.Addr(), n.Subnets)
		}
		ep.Addrs = append(ep.Addrs, p)
	}
	if len(ep.Addrs) == 0 {
		return nil, errkind.Errorf(errkind.BadRequest, "endpoint %q: no address assigned (vxnet needs IPAM to assign one)", r.EndpointID)
	}
	mac, err := endpointMAC(r.Interface.MacAddress, ep.Addrs[0].Addr(), r.EndpointID)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", r.EndpointID, err)
	}
	ep.MAC = mac.String()
	return ep, nil
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// endpointMAC is the requested MAC or, like Docker's bridge, 02:42 followed
// by the IPv4 address (unique as addresses are; v6-only endpoints use
// bytes of the endpoint ID).
func endpointMAC(requested string, a netip.Addr, id string) (net.HardwareAddr, error) {
	if requested != "" {
		mac, err := net.ParseMAC(requested)
		if err != nil || len(mac) != 6 {
			return nil, errkind.Errorf(errkind.BadRequest, "bad MAC address %q", requested)
		}
		if mac[0]&1 == 1 {
			return nil, errkind.Errorf(errkind.BadRequest, "MAC address %q is multicast", requested)
		}
		return mac, nil
	}
	mac := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0}
	if a.Is4() {
		copy(mac[2:], a.AsSlice())
		return mac, nil
	}
	var b [4]byte
	if _, err := fmt.Sscanf(id[:8], "%02x%02x%02x%02x", &b[0], &b[1], &b[2], &b[3]); err != nil {
		return nil, fmt.Errorf("derive MAC from endpoint ID: %w", err)
	}
	copy(mac[2:], b[:])
	return mac, nil
}

// DeleteEndpoint removes the endpoint's veth (if Leave did not) and its
// record. An unknown endpoint is not an error.
func (d *Driver) DeleteEndpoint(ctx context.Context, r *network.DeleteEndpointRequest) error {
	if err := validID("endpoint", r.EndpointID); err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n, err := d.lookup(ctx, r.NetworkID)
	if err != nil {
		return err
	}
	if err := d.removeEndpoint(ctx, n, r.EndpointID); err != nil {
		return err
	}
	d.logNet(n).WithField("endpoint", r.EndpointID).Info("endpoint deleted")
	return nil
}

// EndpointInfo answers NetworkDriver.EndpointOperInfo.
func (d *Driver) EndpointInfo(ctx context.Context, r *network.InfoRequest) (*network.InfoResponse, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ep, n, err := d.endpoint(ctx, r.NetworkID, r.EndpointID)
	if err != nil {
		return nil, err
	}
	return &network.InfoResponse{Value: map[string]string{
		"vxnet.vni":  fmt.Sprint(n.VNI),
		"vxnet.vtep": ep.VTEP.String(),
		"vxnet.mac":  ep.MAC,
	}}, nil
}

// endpoint reads an endpoint record; the caller holds mu.
func (d *Driver) endpoint(ctx context.Context, netID, epID string) (*Endpoint, *Network, error) {
	if err := validID("endpoint", epID); err != nil {
		return nil, nil, err
	}
	n, err := d.lookup(ctx, netID)
	if err != nil {
		return nil, nil, err
	}
	ep, _, err := store.GetJSON[Endpoint](ctx, d.o.Store, keys.Endpoint(n.Key, epID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errkind.Errorf(errkind.NotFound, "endpoint %q not found in network %q", epID, netID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read endpoint %q: %w", epID, err)
	}
	return ep, n, nil
}

// joinRecord is Join's endpoint record: the one CreateEndpoint kept
// (fresh.go) if it is of this network, else the store's; the caller holds
// mu.
func (d *Driver) joinRecord(ctx context.Context, netID, epID string) (*Endpoint, *Network, error) {
	if err := validID("endpoint", epID); err != nil {
		return nil, nil, err
	}
	n, err := d.lookup(ctx, netID)
	if err != nil {
		return nil, nil, err
	}
	if ep, ok := d.fresh.take(epID); ok && ep.Network == n.Key && ep.DockerNet == netID {
		return ep, n, nil
	}
	return d.endpoint(ctx, netID, epID)
}

// Join creates the endpoint's veth pair: one end on the network's bridge,
// the other handed to Docker, which moves it into the container as ethN.
// By default no gateway is returned, so Docker attaches the container to
// docker_gwbridge for egress and published ports (unless --internal). With
// egress=own the network's IPv4 gateway on br0 is the container's default
// gateway and Docker's gateway service is turned off: the namespace's
// egress pair (dataplane/egress.go) carries the traffic.
func (d *Driver) Join(ctx context.Context, r *network.JoinRequest) (*network.JoinResponse, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ep, n, err := d.joinRecord(ctx, r.NetworkID, r.EndpointID)
	if err != nil {
		return nil, err
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: stored MAC %q: %w", ep.ID, ep.MAC, err)
	}
	resp := &network.JoinResponse{}
	if n.Options.OwnEgress() {
		gw, ok := gateway4(n)
		if !ok {
			return nil, fmt.Errorf("join endpoint %q: network has %s=%s but no IPv4 gateway", ep.ID, OptEgress, EgressOwn)
		}
		resp.Gateway, resp.DisableGatewayService = gw.String(), true
	}
	name, err := d.o.Plane.EnsureEndpoint(dataplane.EndpointConfig{VNI: n.VNI, ID: ep.ID, MAC: mac, MTU: d.mtu(n)})
	if err != nil {
		return nil, fmt.Errorf("join endpoint %q: %w", ep.ID, err)
	}
	d.logNet(n).WithFields(map[string]any{"endpoint": ep.ID, "sandbox": r.SandboxKey}).Info("endpoint joined")
	resp.InterfaceName = network.InterfaceName{SrcName: name, DstPrefix: "eth"}
	return resp, nil
}

// Leave removes the endpoint's veth pair; the record stays until
// DeleteEndpoint.
func (d *Driver) Leave(ctx context.Context, r *network.LeaveRequest) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, n, err := d.endpoint(ctx, r.NetworkID, r.EndpointID)
	if err != nil {
		return err
	}
	if err := d.o.Plane.DeleteEndpoint(n.VNI, r.EndpointID); err != nil {
		return fmt.Errorf("leave endpoint %q: %w", r.EndpointID, err)
	}
	d.logNet(n).WithField("endpoint", r.EndpointID).Info("endpoint left")
	return nil
}

package driver

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/errkind"
)

// Published ports (-p, -P) of a container on a network with egress=own:
// Docker gives them to the driver in ProgramExternalConnectivity's option
// portMapOption, as libnetwork's types.PortBinding list, each with the
// host port or range the user asked for, 0 where Docker leaves the choice
// to the driver (-P, or -p with no host port).
//
// vxnet publishes fixed host ports and ranges (the first free port of the
// range). It refuses host port 0: Docker reads the host ports a driver
// chose (for `docker port`, `docker ps`) from the endpoint's driver info
// by asserting Go types of libnetwork's own (daemon getEndpointPortMapInfo,
// 20.10 and 26.1), which a remote driver's JSON answer never has, so a port
// vxnet chose could not be found by anyone.

// portMapOption carries a container's published ports (-p, -P) in
// ProgramExternalConnectivity's Options.
const portMapOption = "com.docker.network.portmap"

// portBinding is libnetwork's types.PortBinding as JSON.
type portBinding struct {
	Proto       uint8
	IP          string
	Port        uint16
	HostIP      string
	HostPort    uint16
	HostPortEnd uint16
}

var protoNames = map[uint8]string{6: "tcp", 17: "udp", 132: "sctp"}

// parsePortMap reads the published ports of options; the network named
// netID (for errors) has egress=own.
func parsePortMap(netID string, options map[string]interface{}) ([]dataplane.PortBinding, error) {
	raw, ok := options[portMapOption]
	if !ok || raw == nil {
		return nil, nil
	}
	js, err := json.Marshal(raw)
	if err != nil {
		return nil, errkind.Errorf(errkind.BadRequest, "option %s: %v", portMapOption, err)
	}
	var pbs []portBinding
	if err := json.Unmarshal(js, &pbs); err != nil {
		return nil, errkind.Errorf(errkind.BadRequest, "option %s %s: %v", portMapOption, js, err)
	}
	out := make([]dataplane.PortBinding, 0, len(pbs))
	for _, pb := range pbs {
		b, err := pb.binding(netID)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (pb portBinding) binding(netID string) (dataplane.PortBinding, error) {
	proto := protoNames[pb.Proto]
	if proto == "" {
		proto = fmt.Sprintf("protocol %d", pb.Proto)
	}
	if proto != "tcp" && proto != "udp" {
		return dataplane.PortBinding{}, errkind.Errorf(errkind.BadRequest, "network %q (%s=%s) publishes tcp and udp ports only, not %d/%s", netID, OptEgress, EgressOwn, pb.Port, proto)
	}
	if pb.HostPort == 0 {
		return dataplane.PortBinding{}, errkind.Errorf(errkind.BadRequest, "network %q has %s=%s: port %d/%s needs a host port (-p HOST:%d): "+
			"Docker does not show the host ports a network plugin chooses, so -P and -p without a host port are refused", netID, OptEgress, EgressOwn, pb.Port, proto, pb.Port)
	}
	if pb.HostPortEnd != 0 && pb.HostPortEnd < pb.HostPort {
		return dataplane.PortBinding{}, errkind.Errorf(errkind.BadRequest, "port %d/%s: host port range %d-%d is empty", pb.Port, proto, pb.HostPort, pb.HostPortEnd)
	}
	b := dataplane.PortBinding{Proto: proto, HostPort: pb.HostPort, HostPortEnd: pb.HostPortEnd, Port: pb.Port}
	if pb.HostIP == "" {
		return b, nil
	}
	ip, err := netip.ParseAddr(pb.HostIP)
	switch {
	case err != nil:
		return b, errkind.Errorf(errkind.BadRequest, "port %d/%s: host address %q: %v", pb.Port, proto, pb.HostIP, err)
	case ip.Is4() && ip.IsUnspecified(): // all addresses
	case ip.Is4():
		b.HostIP = ip
	default:
		return b, errkind.Errorf(errkind.BadRequest, "network %q (%s=%s) publishes on IPv4 host addresses only, not %s", netID, OptEgress, EgressOwn, ip)
	}
	return b, nil
}

// publishPorts publishes ep's bindings on this host.
func (d *Driver) publishPorts(ep *Endpoint, n *Network, bindings []dataplane.PortBinding) error {
	var addr netip.Addr
	for _, a := range ep.Addrs {
		if a.Addr().Is4() {
			addr = a.Addr()
			break
		}
	}
	if !addr.IsValid() {
		return errkind.Errorf(errkind.BadRequest, "endpoint %q has no IPv4 address to publish ports to", ep.ID)
	}
	if _, err := d.o.Plane.Publish(dataplane.PublishConfig{VNI: n.VNI, Endpoint: ep.ID, Addr: addr, Ports: bindings}); err != nil {
		return fmt.Errorf("publish ports of endpoint %q: %w", ep.ID, err)
	}
	return nil
}

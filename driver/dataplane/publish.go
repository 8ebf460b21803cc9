package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vxnet/vxnet/errkind"
)

// Published ports of a network with its own egress (`docker run -p` on
// egress=own) go through the network's egress pair, in two DNAT steps, so
// the host needs no route to the network's subnet (the same subnet, or
// another network's, may be routed elsewhere on the host):
//
//	client -> hostIP:H  --host DNAT-->  egress0's address:H  (via vxe-<vni>)
//	                    --namespace DNAT (iif egress0, dport H)-->  container:P
//
//   - Host: nat chain VXNET-EGRESS-PORTS, jumped to from PREROUTING and
//     OUTPUT for destinations of type LOCAL (so from other machines and
//     from the host itself), one DNAT rule per binding; one ACCEPT per
//     binding in filter VXNET-EGRESS (Docker's FORWARD policy is DROP).
//     Each rule's comment is vxe-<vni>/<endpoint id12>, which is how an
//     endpoint's rules are found to remove.
//   - Connections to 127.0.0.0/8: route_localnet on vxe-<vni> lets them
//     leave by it, and the network's masquerade of 127.0.0.0/8 out of
//     vxe-<vni> (hostRules) gives them the host side's address.
//   - Namespace: chain prerouting (nat) of table ip vxnet-egress, one
//     DNAT rule per binding whose user data is the endpoint's id12.
//   - The client's address is kept for connections from other machines:
//     nothing rewrites the source on the way in, and the container's
//     replies go back by its default route, through egress0.
//   - While published, vxnet holds a socket bound to each host address and
//     port (bound only, nothing is accepted: the DNAT takes the packets
//     first), as Docker's docker-proxy does: a port already taken (by
//     docker-proxy, another vxnet container, any program) fails Publish
//     with ErrPortInUse, and nothing else can take it meanwhile. A restarted
//     plugin holds none until the container publishes again; its rules
//     still forward.

const (
	portsChainName  = "VXNET-EGRESS-PORTS"
	egressDnatChain = "prerouting"
)

// ErrPortInUse is wrapped when a host port to publish is taken.
var ErrPortInUse = errkind.New(errkind.Conflict, "host port in use")

// PortBinding is one published port of an endpoint.
type PortBinding struct {
	Proto string // "tcp" or "udp"
	// HostIP is the host address to publish on; the zero Addr stands for
	// all the host's IPv4 addresses.
	HostIP netip.Addr
	// HostPort..HostPortEnd is the range of host ports to choose from,
	// the first free one wins; HostPortEnd 0 means HostPort alone.
	HostPort, HostPortEnd uint16
	Port                  uint16 // the container's
}

func (b PortBinding) String() string {
	h := "0.0.0.0"
	if b.HostIP.IsValid() {
		h = b.HostIP.String()
	}
	return net.JoinHostPort(h, strconv.Itoa(int(b.HostPort))) + "->" + strconv.Itoa(int(b.Port)) + "/" + b.Proto
}

func (b PortBinding) protoNum() (byte, error) {
	switch b.Proto {
	case "tcp":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	}
	return 0, invalid("port %d: protocol %q: want tcp or udp", b.Port, b.Proto)
}

// PublishConfig says what an endpoint publishes.
type PublishConfig struct {
	VNI      uint32
	Endpoint string     // endpoint ID
	Addr     netip.Addr // the endpoint's IPv4 address
	Ports    []PortBinding
}

// reserve binds a socket to b's host address and to the first port of its
// range bind accepts, returning b with that port.
func reserve(b PortBinding, bind func(PortBinding) (io.Closer, error)) (PortBinding, io.Closer, error) {
	end := max(b.HostPortEnd, b.HostPort)
	var errs error
	for port := int(b.HostPort); port <= int(end); port++ {
		try := b
		try.HostPort, try.HostPortEnd = uint16(port), 0
		c, err := bind(try)
		if err == nil {
			return try, c, nil
		}
		errs = err
	}
	return b, nil, fmt.Errorf("%w: %s: %w", ErrPortInUse, b, errs)
}

// bindPort binds a socket of the calling thread's namespace to b's host
// address and port.
func bindPort(b PortBinding) (io.Closer, error) {
	addr := "0.0.0.0"
	if b.HostIP.IsValid() {
		addr = b.HostIP.String()
	}
	hp := net.JoinHostPort(addr, strconv.Itoa(int(b.HostPort)))
	if b.Proto == "udp" {
		return net.ListenPacket("udp4", hp)
	}
	return net.Listen("tcp4", hp)
}

// Publish makes c's ports reachable on the host (see above): it reserves
// each host port, then writes the namespace's and the host's rules. A
// second call for the same endpoint replaces the first. On failure nothing
// of it is left. It returns the bindings with the host ports chosen.
func (p *Plane) Publish(c PublishConfig) (out []PortBinding, err error) {
	if !c.Addr.Is4() {
		return nil, invalid("publish endpoint %q: address %s is not IPv4", c.Endpoint, c.Addr)
	}
	log := p.log.WithFields(logrus.Fields{"vni": c.VNI, "endpoint": ShortID(c.Endpoint)})
	defer p.lockEgress()()
	path, err := p.liveNs(c.VNI)
	if err != nil {
		return nil, err
	}
	pair, ok, err := existingPair(log, c.VNI)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("publish endpoint %q: network vni %d has no egress link %q", c.Endpoint, c.VNI, egressHostLink(c.VNI))
	}
	id := ShortID(c.Endpoint)
	if err := p.unpublish(log, path, c.VNI, id); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("publish endpoint %q: %w", c.Endpoint, err), p.unpublish(log, path, c.VNI, id))
		}
	}()
	if p.held == nil {
		p.held = map[string][]io.Closer{}
	}
	for _, b := range c.Ports {
		if _, err := b.protoNum(); err != nil {
			return nil, err
		}
		got, sock, err := reserve(b, bindPort)
		if err != nil {
			return nil, err
		}
		p.held[id] = append(p.held[id], sock)
		out = append(out, got)
	}
	link := egressHostLink(c.VNI)
	if err := ensureSysctl(log, filepath.Join(p.sysctl, "net/ipv4/conf", link, "route_localnet"), "1"); err != nil {
		return nil, err
	}
	if err := inNetns(log, path, func() error { return addPortNat(log, id, c.Addr, out) }); err != nil {
		return nil, err
	}
	if err := addPortRules(log, link, id, pair, out); err != nil {
		return nil, err
	}
	p.markEgress(c.VNI)
	log.WithField("ports", fmt.Sprint(out)).Info("published ports")
	return out, nil
}

// lockEgress takes mu (shared) and egressMu for work on a network's
// egress; the caller defers the function it returns, which releases them.
func (p *Plane) lockEgress() (unlock func()) {
	p.mu.RLock()
	p.egressMu.Lock()
	return func() {
		p.egressMu.Unlock()
		p.mu.RUnlock()
	}
}

// Unpublish removes what Publish made for the endpoint. Missing parts are
// not an error.
func (p *Plane) Unpublish(vni uint32, endpoint string) error {
	log := p.log.WithFields(logrus.Fields{"vni": vni, "endpoint": ShortID(endpoint)})
	defer p.lockEgress()()
	return p.unpublish(log, p.nsPath(vni), vni, ShortID(endpoint))
}

// unpublish releases id's sockets and removes its rules, the namespace's
// if it is live. The caller holds mu (either way) and egressMu.
func (p *Plane) unpublish(log *logrus.Entry, path string, vni uint32, id string) error {
	var errs error
	held := len(p.held[id]) > 0
	for _, s := range p.held[id] {
		errs = errors.Join(errs, s.Close())
	}
	delete(p.held, id)
	live, err := isNetnsMount(path)
	if err != nil {
		return errors.Join(errs, err)
	}
	if live && !held {
		// No namespace rule of id: no host rule either (PrunePublished;
		// a namespace repaired by recreating it lost its rules, but then
		// this process published, and held is true).
		var owners []string
		if err := inNetns(log, path, func() (err error) { owners, err = portNatOwners(); return err }); err != nil || !slices.Contains(owners, id) {
			return errors.Join(errs, err)
		}
	}
	link := egressHostLink(vni)
	if err := pruneHostRules(log, func(l, ep string) bool { return l == link && ep == id }); err != nil || !live {
		return errors.Join(errs, err)
	}
	return errors.Join(errs, inNetns(log, path, func() error { return delPortNat(log, id) }))
}

// PrunePublished removes the published ports of vni's endpoints that have
// no port on the network's bridge any more: left by a container that went
// while the plugin was down, or by a failed RevokeExternalConnectivity. It
// looks at the namespace's rules only (no iptables command) unless it finds
// such an endpoint: the host's rules of an endpoint never outlive its
// namespace rules (Publish writes those first, unpublish removes them last).
func (p *Plane) PrunePublished(vni uint32) error {
	log := p.log.WithField("vni", vni)
	defer p.lockEgress()()
	path, err := p.liveNs(vni)
	if err != nil {
		return err
	}
	ports, err := p.ports(vni)
	if err != nil {
		return err
	}
	var owners []string
	if err := inNetns(log, path, func() (err error) { owners, err = portNatOwners(); return err }); err != nil {
		return err
	}
	var errs error
	for _, id := range owners {
		if !slices.Contains(ports, id) {
			log.WithField("endpoint", id).Warn("removing the published ports of an endpoint that is gone")
			errs = errors.Join(errs, p.unpublish(log, path, vni, id))
		}
	}
	return errs
}

// addPortRules appends the host's DNAT and ACCEPT rules of bindings.
func addPortRules(log *logrus.Entry, link, id string, pair egressPair, bindings []PortBinding) error {
	for _, c := range []hostChain{filterChain, portsChain} {
		if _, err := ensureChain(log, c); err != nil {
			return err
		}
	}
	for _, b := range bindings {
		port := strconv.Itoa(int(b.HostPort))
		match := []string{"-p", b.Proto, "-m", b.Proto, "--dport", port, "-m", "comment", "--comment", link + "/" + id}
		dst := []string{}
		if b.HostIP.IsValid() {
			dst = []string{"-d", b.HostIP.String() + "/32"}
		}
		dnat := append(append(append([]string{"-t", "nat", "-A", portsChainName}, dst...), match...), "-j", "DNAT", "--to-destination", pair.ns.String()+":"+port)
		accept := append(append([]string{"-t", "filter", "-A", egressChain, "-d", pair.ns.String() + "/32", "-o", link}, match...), "-j", "ACCEPT")
		for _, args := range [][]string{accept, dnat} {
			if _, err := iptables(log, args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// egressDnat is the namespace's chain of published ports.
func egressDnat(c *nftables.Conn) (*nftables.Table, *nftables.Chain) {
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: egressNatTable})
	ch := c.AddChain(&nftables.Chain{Name: egressDnatChain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	return t, ch
}

// addPortNat runs in the network namespace: one rule per binding,
// `iifname "egress0" meta l4proto P th dport H dnat to addr:port`, with
// user data id.
func addPortNat(log *logrus.Entry, id string, addr netip.Addr, bindings []PortBinding) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t, ch := egressDnat(c)
	for _, b := range bindings {
		proto, err := b.protoNum()
		if err != nil {
			return err
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: []byte(id), Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(egressNsLink)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(b.HostPort)},
			&expr.Immediate{Register: 1, Data: addr.AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(b.Port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}})
	}
	log.WithField("table", "ip "+egressNatTable).Debug("nftables: write published ports")
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: published ports in ip %s: %w", egressNatTable, err)
	}
	return nil
}

// portNatOwners runs in the network namespace: the endpoints (id12) with
// rules of published ports.
func portNatOwners() ([]string, error) {
	rules, err := portNatRules()
	var ids []string
	for _, r := range rules {
		if id := string(r.UserData); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, err
}

func portNatRules() ([]*nftables.Rule, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: egressNatTable}
	rules, err := c.GetRules(t, &nftables.Chain{Name: egressDnatChain, Table: t})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nftables: list ip %s %s: %w", egressNatTable, egressDnatChain, err)
	}
	return rules, nil
}

// delPortNat runs in the network namespace: it deletes id's rules of
// published ports.
func delPortNat(log *logrus.Entry, id string) error {
	rules, err := portNatRules()
	if err != nil || len(rules) == 0 {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	n := 0
	for _, r := range rules {
		if string(r.UserData) == id {
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("nftables: delete published port of %q: %w", id, err)
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	log.WithField("table", "ip "+egressNatTable).Debug("nftables: delete published ports")
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: published ports in ip %s: %w", egressNatTable, err)
	}
	return nil
}

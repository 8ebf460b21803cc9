package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A network's own egress (NetworkConfig.Egress, `-o vxnet.egress=own`)
// replaces Docker's docker_gwbridge endpoint per container by one veth
// pair per network and host:
//
//	container --br0 (gateway)-- [network namespace] egress0 ==veth== vxe-<vni> [host] --> uplink
//
//   - egress0 (namespace) and vxe-<vni> (host) hold a /31 of EgressRange,
//     the host side the even address. The pair is chosen per host: slot
//     vni mod (slots in the range), or the next slot whose /31 no address
//     of the host namespace overlaps, so it cannot collide with another
//     network's pair or with anything else the host has there. An
//     existing vxe-<vni> keeps its pair.
//   - The namespace has ip_forward on, a default route via the host side,
//     and the nftables table "ip vxnet-egress" masquerading what leaves by
//     egress0 to egress0's address: the host never needs a route to the
//     network's subnet (the same on every host).
//   - The host gets ip_forward on and its own iptables chains (egress_host.go).
//
// Containers reach the gateway on their own host's br0: ARP never crosses
// the VXLAN device (proxy mode answers ARP from the neighbour entries of
// remote endpoints and drops requests for anything else), so the same
// gateway address on every host's br0 does not conflict.

// EgressRange holds the link addresses of the egress pairs. It leaves out
// 169.254.0.0/24 and 169.254.255.0/24 (reserved by RFC 3927) and
// 169.254.169.0/24 (cloud metadata services).
var EgressRange = netip.MustParsePrefix("169.254.64.0/18")

const (
	egressNsLink     = "egress0"
	egressHostPrefix = "vxe-"
	egressNatTable   = "vxnet-egress"
	egressNatChain   = "postrouting"
)

func egressHostLink(vni uint32) string {
	return egressHostPrefix + strconv.FormatUint(uint64(vni), 10)
}

// egressPair is the /31 of a network's egress veth pair.
type egressPair struct{ host, ns netip.Addr }

func (e egressPair) hostPrefix() netip.Prefix { return netip.PrefixFrom(e.host, 31) }
func (e egressPair) nsPrefix() netip.Prefix   { return netip.PrefixFrom(e.ns, 31) }

// egressSlots is the number of /31 pairs in EgressRange.
func egressSlots() uint32 { return 1 << (32 - EgressRange.Bits() - 1) }

// pairAt is the pair of slot i of EgressRange.
func pairAt(i uint32) egressPair {
	b := EgressRange.Addr().As4()
	base := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	a := base + 2*(i%egressSlots())
	h := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
	return egressPair{host: h, ns: h.Next()}
}

// pickPair is the pair of vni on a host whose IPv4 addresses (other than
// those of vni's own pair) are used: the first free slot from vni's own.
func pickPair(vni uint32, used []netip.Prefix) (egressPair, error) {
	n := egressSlots()
	for i := uint32(0); i < n; i++ {
		p := pairAt(vni%n + i)
		if !overlapsAny(p.hostPrefix(), used) {
			return p, nil
		}
	}
	return egressPair{}, fmt.Errorf("no free /31 left in egress range %s", EgressRange)
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Overlaps(p) {
			return true
		}
	}
	return false
}

// EgressPair returns the link addresses of a network's egress pair on this
// host (host side, namespace side); false when it has none.
func (p *Plane) EgressPair(vni uint32) (host, ns netip.Addr, ok bool, err error) {
	pair, ok, err := existingPair(p.log, vni)
	return pair.host, pair.ns, ok, err
}

// existingPair reads the pair from the host side's address.
func existingPair(log *logrus.Entry, vni uint32) (egressPair, bool, error) {
	l, err := linkByName(log, egressHostLink(vni))
	if err != nil || l == nil {
		return egressPair{}, false, err
	}
	addrs, err := dump("addresses of "+l.Attrs().Name, func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return egressPair{}, false, err
	}
	for _, a := range addrs {
		pfx, ok := addrPrefix(a)
		if ok && pfx.Bits() == 31 && EgressRange.Contains(pfx.Addr()) && pfx.Addr() == pfx.Masked().Addr() {
			return egressPair{host: pfx.Addr(), ns: pfx.Addr().Next()}, true, nil
		}
	}
	return egressPair{}, false, nil
}

// hostV4Addrs lists the IPv4 addresses of the calling thread's namespace,
// leaving out those of vni's own egress link.
func hostV4Addrs(log *logrus.Entry, vni uint32) ([]netip.Prefix, error) {
	log.Debug("netlink: list addresses")
	addrs, err := dump("addresses", func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, err
	}
	own, _ := linkByName(log, egressHostLink(vni))
	var out []netip.Prefix
	for _, a := range addrs {
		if own != nil && a.LinkIndex == own.Attrs().Index {
			continue
		}
		if pfx, ok := addrPrefix(a); ok {
			out = append(out, pfx.Masked())
		}
	}
	return out, nil
}

// ensureEgress creates or repairs a network's egress: the veth pair, its
// addresses and route, the namespace's masquerade, the host's rules and
// ip_forward. On failure it removes what exists of it. The network's
// namespace must be live.
func (p *Plane) ensureEgress(log *logrus.Entry, c NetworkConfig) (err error) {
	defer p.lockEgress()()
	path, err := p.liveNs(c.VNI)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("egress of network vni %d: %w", c.VNI, err), p.removeEgress(log, path, c.VNI))
		}
	}()
	pair, ok, err := existingPair(log, c.VNI)
	if err != nil {
		return err
	}
	if !ok {
		used, err := hostV4Addrs(log, c.VNI)
		if err != nil {
			return err
		}
		if pair, err = pickPair(c.VNI, used); err != nil {
			return err
		}
	}
	if err := ensureEgressLinks(log, path, p.sysctl, c, pair); err != nil {
		return err
	}
	if err := ensureSysctl(log, filepath.Join(p.sysctl, "net/ipv4/ip_forward"), "1"); err != nil {
		return err
	}
	p.markEgress(c.VNI)
	return ensureHostRules(log, c.VNI, pair)
}

// ensureEgressLinks makes the pair exist as wanted, recreating it when any
// part differs.
func ensureEgressLinks(log *logrus.Entry, path, sysctlDir string, c NetworkConfig, pair egressPair) error {
	hostName := egressHostLink(c.VNI)
	hl, err := linkByName(log, hostName)
	if err != nil {
		return err
	}
	hostOK := false
	if v, ok := hl.(*netlink.Veth); ok && upWithMTU(v, c.MTU) {
		if hostOK, err = hasAddr(log, v, pair.hostPrefix()); err != nil {
			return err
		}
	}
	if !hostOK {
		if _, err := deleteLink(log, hostName); err != nil {
			return err
		}
	}
	hostNs, err := currentNetns()
	if err != nil {
		return err
	}
	defer hostNs.Close()
	created := false
	err = inNetns(log, path, func() error {
		if err := ensureSysctl(log, filepath.Join(sysctlDir, "net/ipv4/ip_forward"), "1"); err != nil {
			return err
		}
		nl, err := linkByName(log, egressNsLink)
		if err != nil {
			return err
		}
		nsOK := false
		if v, ok := nl.(*netlink.Veth); ok && hostOK && upWithMTU(v, c.MTU) && v.ParentIndex == hl.Attrs().Index {
			if nsOK, err = hasAddr(log, v, pair.nsPrefix()); err != nil {
				return err
			}
		}
		if !nsOK {
			if created, err = createEgressPair(log, hostNs, c, pair); err != nil {
				return err
			}
		}
		if err := ensureDefaultRoute(log, pair.host); err != nil {
			return err
		}
		return ensureEgressNat(log)
	})
	if err != nil {
		return err
	}
	if created {
		h, err := mustLink(log, hostName)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(h, nlAddr(pair.hostPrefix())); err != nil {
			return fmt.Errorf("add address %s to %q: %w", pair.hostPrefix(), hostName, err)
		}
		if err := setUp(log, h); err != nil {
			return err
		}
		log.WithFields(logrus.Fields{"link": hostName, "addr": pair.hostPrefix()}).Info("created egress link")
	}
	return nil
}

// createEgressPair runs in the network namespace: it replaces egress0 (and
// with it its peer) by a new pair, egress0 here with its address and up,
// vxe-<vni> in the host namespace (where the caller removed any other link
// of that name).
func createEgressPair(log *logrus.Entry, hostNs netns.NsHandle, c NetworkConfig, pair egressPair) (bool, error) {
	if _, err := deleteLink(log, egressNsLink); err != nil {
		return false, err
	}
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: egressNsLink, MTU: c.MTU},
		PeerName:      egressHostLink(c.VNI),
		PeerMTU:       uint32(c.MTU),
		PeerNamespace: netlink.NsFd(hostNs),
	}
	if err := addLink(log, v); err != nil {
		return false, err
	}
	l, err := mustLink(log, egressNsLink)
	if err != nil {
		return true, err
	}
	if err := netlink.AddrAdd(l, nlAddr(pair.nsPrefix())); err != nil {
		return true, fmt.Errorf("add address %s to %q: %w", pair.nsPrefix(), egressNsLink, err)
	}
	return true, setUp(log, l)
}

func hasAddr(log *logrus.Entry, l netlink.Link, want netip.Prefix) (bool, error) {
	log.WithField("link", l.Attrs().Name).Debug("netlink: list addresses")
	addrs, err := dump("addresses of "+l.Attrs().Name, func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if pfx, ok := addrPrefix(a); ok && pfx == want {
			return true, nil
		}
	}
	return false, nil
}

// ensureDefaultRoute makes the namespace's IPv4 default route go via gw
// on egress0.
func ensureDefaultRoute(log *logrus.Entry, gw netip.Addr) error {
	l, err := mustLink(log, egressNsLink)
	if err != nil {
		return err
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(gw.AsSlice()), Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
	log.WithField("via", gw).Debug("netlink: replace default route")
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("default route via %s dev %s: %w", gw, egressNsLink, err)
	}
	return nil
}

// ensureEgressNat runs in the network namespace: table ip vxnet-egress,
// chain postrouting (nat), one rule `oifname "egress0" masquerade`.
func ensureEgressNat(log *logrus.Entry) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: egressNatTable})
	ch := c.AddChain(&nftables.Chain{Name: egressNatChain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: table ip %s: %w", egressNatTable, err)
	}
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return fmt.Errorf("nftables: list ip %s %s: %w", egressNatTable, egressNatChain, err)
	}
	if len(rules) == 1 {
		return nil
	}
	log.WithField("table", "ip "+egressNatTable).Debug("nftables: write masquerade")
	c.FlushChain(ch)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(egressNsLink)},
		&expr.Masq{},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: masquerade in ip %s: %w", egressNatTable, err)
	}
	return nil
}

func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// removeEgress removes a network's egress: the pair (the namespace side,
// if the namespace at path is live, and the host side) and the host's
// rules. The namespace's nat table goes with the namespace. Missing parts
// are not an error. The caller holds mu (either way) and egressMu.
func (p *Plane) removeEgress(log *logrus.Entry, path string, vni uint32) error {
	live, err := isNetnsMount(path)
	if err != nil {
		return err
	}
	if live {
		if err := inNetns(log, path, func() error { _, err := deleteLink(log, egressNsLink); return err }); err != nil {
			return err
		}
	}
	deleted, err := deleteLink(log, egressHostLink(vni))
	if err != nil {
		return err
	}
	if deleted {
		log.WithField("link", egressHostLink(vni)).Info("deleted egress link")
	}
	return deleteHostRules(log, vni)
}

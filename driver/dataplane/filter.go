package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

const (
	filterTable = "vxnet"
	filterInput = "input"
	// vxlanVNIOffset is where the VNI sits in a VXLAN packet's transport
	// header: 8 bytes of UDP header, then flags (1) and reserved (3).
	vxlanVNIOffset = 12
)

func filterChainName(vni uint32) string { return "vni-" + strconv.FormatUint(uint64(vni), 10) }
func filterSetName(vni uint32, v6 bool) string {
	if v6 {
		return "v6-" + strconv.FormatUint(uint64(vni), 10)
	}
	return "v4-" + strconv.FormatUint(uint64(vni), 10)
}

// withNft runs fn with an nftables connection opened on the calling
// thread, so in its network namespace, as the netlink calls of the data
// plane's host side.
func withNft(fn func(c *nftables.Conn, t *nftables.Table) error) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return fn(c, &nftables.Table{Family: nftables.TableFamilyINet, Name: filterTable})
}

// ensureFilter creates or repairs the filter of one network: table, input
// chain, the network's sets and chain, and its rule in input (replaced if
// it names another port).
//
// The VXLAN filter admits VXLAN packets for a vxnet VNI only from the VTEPs
// of that network's peers. It lives in the namespace of the VXLAN UDP
// socket (the caller's, the host's in production), in one nftables table
// vxnet owns, "inet vxnet":
//
//	chain input { type filter hook input priority filter; policy accept;
//	    udp dport <port> @th,96,24 <vni> jump vni-<vni>   # one per network
//	}
//	chain vni-<vni> {
//	    ip saddr @v4-<vni> accept
//	    ip6 saddr @v6-<vni> accept
//	    counter drop
//	}
//
// The match on the VNI in the VXLAN header (UDP payload bytes 4..6) leaves
// other VXLAN traffic on the port alone (Docker's overlay, other vxnet
// networks). EnsureNetwork makes a network's chain and rule; SetPeers
// converges its sets; DeleteNetwork removes them, and the table with the
// last network. The kernel keeps the table while the plugin is down:
// strangers stay out, members keep talking.
//
// nftables through github.com/google/nftables (netlink, no binary needed
// in the plugin's rootfs) rather than iptables: a table of our own cannot
// collide with Docker's or the distribution's rules, sets update one
// element at a time, and the u32-style match on the VNI is a plain
// payload expression.
func ensureFilter(log *logrus.Entry, vni uint32, port int) error {
	err := withNft(func(c *nftables.Conn, t *nftables.Table) error {
		log.WithFields(logrus.Fields{"table": "inet " + filterTable, "chain": filterChainName(vni)}).Debug("nftables: ensure filter")
		c.AddTable(t)
		input := c.AddChain(&nftables.Chain{Name: filterInput, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
		sets := [2]*nftables.Set{
			{Table: t, Name: filterSetName(vni, false), KeyType: nftables.TypeIPAddr},
			{Table: t, Name: filterSetName(vni, true), KeyType: nftables.TypeIP6Addr},
		}
		for _, s := range sets {
			if err := c.AddSet(s, nil); err != nil {
				return err
			}
		}
		chain := c.AddChain(&nftables.Chain{Name: filterChainName(vni), Table: t})
		if err := c.Flush(); err != nil {
			return err
		}
		rules, err := c.GetRules(t, chain)
		if err != nil {
			return err
		}
		if len(rules) != 3 {
			c.FlushChain(chain)
			for _, r := range vniChainRules(chain, sets) {
				c.AddRule(r)
			}
		}
		if err := ensureJump(c, input, vni, port); err != nil {
			return err
		}
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("ensure vxlan filter (table inet %s) for vni %d port %d: %w", filterTable, vni, port, err)
	}
	return nil
}

// jumpTag marks a network's rule in the input chain.
func jumpTag(vni uint32, port int) string {
	return fmt.Sprintf("vni=%d port=%d", vni, port)
}

// ensureJump queues the network's rule in input unless it is there, and
// the deletion of its rules for another port.
func ensureJump(c *nftables.Conn, input *nftables.Chain, vni uint32, port int) error {
	rules, err := c.GetRules(input.Table, input)
	if err != nil {
		return err
	}
	want, have := jumpTag(vni, port), false
	for _, r := range rules {
		tag := string(r.UserData)
		switch {
		case tag == want:
			have = true
		case strings.HasPrefix(tag, fmt.Sprintf("vni=%d ", vni)):
			if err := c.DelRule(r); err != nil {
				return err
			}
		}
	}
	if !have {
		c.AddRule(&nftables.Rule{Table: input.Table, Chain: input, UserData: []byte(want), Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: vxlanVNIOffset, Len: 3},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(vni >> 16), byte(vni >> 8), byte(vni)}},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: filterChainName(vni)},
		}})
	}
	return nil
}

// vniChainRules: accept sources in the network's sets, count and drop the
// rest.
func vniChainRules(chain *nftables.Chain, sets [2]*nftables.Set) []*nftables.Rule {
	src := func(proto byte, s *nftables.Set, off, n uint32) *nftables.Rule {
		return &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}}
	}
	return []*nftables.Rule{
		src(unix.NFPROTO_IPV4, sets[0], 12, 4),
		src(unix.NFPROTO_IPV6, sets[1], 8, 16),
		{Table: chain.Table, Chain: chain, Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}},
	}
}

// syncFilter adds the VTEPs in want missing from the network's sets and,
// with prune, removes those not in want. A network without a filter (not
// made yet, or removed behind vxnet's back until EnsureNetwork repairs it)
// is left alone.
func syncFilter(log *logrus.Entry, vni uint32, want map[netip.Addr]bool, prune bool) error {
	err := withNft(func(c *nftables.Conn, t *nftables.Table) error {
		for _, v6 := range []bool{false, true} {
			s, err := c.GetSetByName(t, filterSetName(vni, v6))
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			if err != nil {
				return err
			}
			elems, err := c.GetSetElements(s)
			if err != nil {
				return err
			}
			have := map[netip.Addr]bool{}
			for _, e := range elems {
				if a, ok := netip.AddrFromSlice(e.Key); ok {
					have[a.Unmap()] = true
				}
			}
			var add, del []nftables.SetElement
			for a := range want {
				if a.Is6() == v6 && !have[a] {
					add = append(add, nftables.SetElement{Key: a.AsSlice()})
				}
			}
			for a := range have {
				if prune && !want[a] {
					del = append(del, nftables.SetElement{Key: a.AsSlice()})
				}
			}
			if len(add) > 0 {
				log.WithFields(logrus.Fields{"set": s.Name, "add": len(add)}).Info("vxlan filter: admit VTEPs")
				if err := c.SetAddElements(s, add); err != nil {
					return err
				}
			}
			if len(del) > 0 {
				log.WithFields(logrus.Fields{"set": s.Name, "remove": len(del)}).Info("vxlan filter: drop VTEPs")
				if err := c.SetDeleteElements(s, del); err != nil {
					return err
				}
			}
		}
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("update vxlan filter (table inet %s) of vni %d: %w", filterTable, vni, err)
	}
	return nil
}

// deleteFilter removes a network's rule, chain and sets, and the table
// when no network is left in it. Missing pieces are not an error.
func deleteFilter(log *logrus.Entry, vni uint32) error {
	err := withNft(func(c *nftables.Conn, t *nftables.Table) error {
		input := &nftables.Chain{Name: filterInput, Table: t}
		rules, err := c.GetRules(t, input)
		if errors.Is(err, unix.ENOENT) {
			return nil // no table
		}
		if err != nil {
			return err
		}
		others := 0
		for _, r := range rules {
			if strings.HasPrefix(string(r.UserData), fmt.Sprintf("vni=%d ", vni)) {
				if err := c.DelRule(r); err != nil {
					return err
				}
			} else {
				others++
			}
		}
		log.WithFields(logrus.Fields{"table": "inet " + filterTable, "chain": filterChainName(vni)}).Debug("nftables: delete filter")
		if others == 0 {
			c.DelTable(t)
			return ignoreENOENT(c.Flush())
		}
		if err := c.Flush(); err != nil {
			return err
		}
		c.DelChain(&nftables.Chain{Name: filterChainName(vni), Table: t})
		if err := ignoreENOENT(c.Flush()); err != nil {
			return err
		}
		for _, v6 := range []bool{false, true} {
			c.DelSet(&nftables.Set{Table: t, Name: filterSetName(vni, v6)})
			if err := ignoreENOENT(c.Flush()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete vxlan filter (table inet %s) of vni %d: %w", filterTable, vni, err)
	}
	return nil
}

// filterVNIs lists the VNIs that have a chain in the filter table.
func filterVNIs() ([]uint32, error) {
	var vnis []uint32
	err := withNft(func(c *nftables.Conn, t *nftables.Table) error {
		chains, err := c.ListChainsOfTableFamily(t.Family)
		if err != nil {
			return err
		}
		for _, ch := range chains {
			if ch.Table == nil || ch.Table.Name != t.Name {
				continue
			}
			s, ok := strings.CutPrefix(ch.Name, "vni-")
			if v, err := strconv.ParseUint(s, 10, 32); ok && err == nil && v > 0 && v <= maxVNI {
				vnis = append(vnis, uint32(v))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list vxlan filters (table inet %s): %w", filterTable, err)
	}
	return vnis, nil
}

func ignoreENOENT(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

package names

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// LinkName is the link holding the resolver's address.
const LinkName = "vxnet-dns"

// EnsureLink makes the link LinkName with addr/32 (/128) and sets it up;
// an existing one is kept, with addr added if missing. It is a bridge
// without ports, not a dummy: vxnet needs bridges anyway, while some
// kernels (Firecracker's) have no dummy driver. The link stays
// when vxnet stops: queries then fail at once (port unreachable) and
// Docker's resolver goes on to the next server, where without it they
// would leave by the default route and time out.
func EnsureLink(addr netip.Addr) error {
	l, err := netlink.LinkByName(LinkName)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		la := netlink.NewLinkAttrs()
		la.Name = LinkName
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return fmt.Errorf("create link %q: %w", LinkName, err)
		}
		l, err = netlink.LinkByName(LinkName)
	}
	if err != nil {
		return fmt.Errorf("find link %q: %w", LinkName, err)
	}
	if l.Type() != "bridge" && l.Type() != "dummy" {
		return fmt.Errorf("link %q exists as a %s device, want a bridge (or dummy)", LinkName, l.Type())
	}
	bits := addr.BitLen()
	a, err := netlink.ParseAddr(netip.PrefixFrom(addr, bits).String())
	if err != nil {
		return fmt.Errorf("address %s for link %q: %w", addr, LinkName, err)
	}
	have, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %q: %w", LinkName, err)
	}
	present := false
	for _, h := range have {
		if h.IP.Equal(a.IP) {
			present = true
		}
	}
	if !present {
		if err := netlink.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add %s to %q: %w", addr, LinkName, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %q up: %w", LinkName, err)
	}
	return nil
}

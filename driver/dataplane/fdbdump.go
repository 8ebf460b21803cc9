package dataplane

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// portFDB dumps the FDB entries of the link with index idx (vxlan0's own
// and the bridge's entries on that port), in the namespace of the calling
// thread, and reports how many the kernel sent.
//
// Why not netlink.NeighList(idx, AF_BRIDGE): it asks for every FDB entry
// of the namespace and drops the other links' itself, and the bridge holds
// permanent entries for each local endpoint's port, so every SetPeers (at
// each endpoint change, and each resync) cost a dump growing with the
// local endpoints (issue #13: 10% of the plugin's CPU at 700). A request
// on a socket with strict checking names the port, and the kernel
// (4.20 and later) sends only its entries.
func portFDB(idx int) (entries []netlink.Neigh, sent int, err error) {
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, 0, fmt.Errorf("open netlink socket: %w", err)
	}
	defer s.Close()
	// A kernel before 4.20 has no strict checking (ENOPROTOOPT): it then
	// sends every entry, and the filter below keeps the port's, as
	// NeighList would.
	if err := unix.SetsockoptInt(s.GetFd(), unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
		return nil, 0, fmt.Errorf("set strict netlink checking: %w", err)
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_DUMP)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	req.AddData(&netlink.Ndmsg{Family: unix.AF_BRIDGE, Index: uint32(idx)})
	var derr error
	err = req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGH, func(msg []byte) bool {
		sent++
		n, err := netlink.NeighDeserialize(msg)
		if err != nil {
			derr = fmt.Errorf("decode fdb entry: %w", err)
			return false
		}
		// Kept only when the kernel did filter (as NeighList does).
		if n.LinkIndex == idx {
			entries = append(entries, *n)
		}
		return true
	})
	if err == nil {
		err = derr
	}
	return entries, sent, err
}

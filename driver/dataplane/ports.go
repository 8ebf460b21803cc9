package dataplane

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// bridgePorts returns the names of the links enslaved to the bridge of
// index master, in the namespace of the calling thread, from one link dump
// the kernel filters by master and that this reads only the name and the
// master of.
//
// Why not netlink.LinkList: Endpoints runs every reconcile round (5 s),
// and LinkList decodes every attribute of every link of the namespace
// (statistics, veth peer, bridge port info): at 900 endpoints one call
// took 19 ms and allocated dozens of objects per link, CPU and garbage
// that the Joins running beside the round paid for (issue #13).
func bridgePorts(master int) ([]string, error) {
	return dump(fmt.Sprintf("ports of bridge (index %d)", master), func() ([]string, error) {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(master))))
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		if err != nil {
			return nil, err // an interrupted dump is incomplete: dump asks again
		}
		var names []string
		for _, msg := range msgs {
			// A kernel that ignored the filter sends every link: check.
			if name, idx, ok := nameAndMaster(msg); ok && idx == master {
				names = append(names, name)
			}
		}
		return names, nil
	})
}

// nameAndMaster reads IFLA_IFNAME and IFLA_MASTER of an RTM_NEWLINK
// message (an ifinfomsg and its attributes) without decoding the rest.
func nameAndMaster(msg []byte) (name string, master int, ok bool) {
	if len(msg) < unix.SizeofIfInfomsg {
		return "", 0, false
	}
	b := msg[unix.SizeofIfInfomsg:]
	for len(b) >= unix.SizeofRtAttr {
		l := int(nl.NativeEndian().Uint16(b[0:2]))
		typ := nl.NativeEndian().Uint16(b[2:4]) &^ unix.NLA_F_NESTED
		if l < unix.SizeofRtAttr || l > len(b) {
			return "", 0, false
		}
		v := b[unix.SizeofRtAttr:l]
		switch {
		case typ == unix.IFLA_IFNAME:
			name = strings.TrimRight(string(v), "\x00")
		case typ == unix.IFLA_MASTER && len(v) >= 4:
			master = int(nl.NativeEndian().Uint32(v))
		}
		b = b[min(rtaAlign(l), len(b)):]
	}
	return name, master, name != ""
}

func rtaAlign(l int) int { return (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

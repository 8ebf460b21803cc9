package driver

import (
	"io"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
)

// WantedPeers returns the entries host (underlay address vtep) programs
// for a network whose endpoint records are kvs, with every host alive:
// the same selection as the peer goroutine's, conflicts resolved alike, for
// `vxnet status` to compare a kernel with.
func WantedPeers(kvs []store.KV, host string, vtep netip.Addr, sc scope.Scope) []dataplane.Peer {
	l := logrus.New()
	l.SetOutput(io.Discard)
	d := &Driver{o: Options{HostID: host, VTEP: vtep, Scope: sc, Log: logrus.NewEntry(l)}}
	return d.peers(kvs, map[string]bool{})
}

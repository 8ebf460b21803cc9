// Package keys is the layout of vxnet's store: one builder for every key
// vxnet writes, one prefix for every listing, and the parsers that take
// keys apart. The driver, the IPAM, the liveness monitor, `vxnet status`
// and `vxnet host forget`, and the e2e leak checker all spell keys through
// it, so the layout is written down once. Keys are relative to the store's
// own prefix (the Consul URI's path).
//
//	networks/<net>                       driver.Network: VNI, subnets, gateways, hosts using it
//	vnis/<vni>                           driver.VNIRecord: which network holds the VNI
//	hosts/<host>/networks/<docker id>    driver.LocalRef: a host's Docker network → <net>
//	endpoints/<net>/<endpoint id>        driver.Endpoint: addresses, MAC, host, VTEP
//	hosts/<host>/endpoints/<endpoint id> the host's own copy of its Endpoints, from which
//	                                     it re-publishes them after other hosts purged it
//	macs/<net>/<mac>                     driver.MACRecord: which endpoint holds the MAC
//	changes/<net>                        driver.ChangeLog: the last endpoint changes of the network,
//	                                     which its members watch instead of endpoints/<net>/
//	subnets                              driver.Claims: the subnets of network creates under way
//	alive/<host>                         a host's heartbeat (on Consul held by a session)
//	liveness/<slot>                      liveness.Record: an elected liveness monitor's silent hosts
//	                                     (held by its session; slots 0 and 1)
//	ipam/subnets                         the IPAM's index: every pool's subnet and its claimants
//	ipam/pools/<pool>                    ipam.Pool: subnet, range, gateway, hosts using it
//	ipam/addrs/<pool>/<address>          ipam.Lease: which host holds the address
//	swarm/services/<service id>          swarm.Record: a swarm service's endpoint mode, from the census
//
// <net> is the pool ID (PoolID) of the network's first subnet: on
// standalone hosts Docker never sends a network's name, so the same subnet
// is what makes `docker network create` on several hosts one network.
// Every segment but the last is fixed or an ID without "/" (Docker's hex
// IDs, pool IDs, host IDs, MACs, addresses), so the last segment of a key
// is its object (Last).
package keys

import (
	"net/netip"
	"strconv"
	"strings"
)

// Prefixes of the listings.
const (
	Networks     = "networks/"
	VNIs         = "vnis/"
	Hosts        = "hosts/"
	AllEndpoints = "endpoints/"
	AllMACs      = "macs/"
	AllChanges   = "changes/"
	Heartbeats   = "alive/"
	Monitors     = "liveness/"
	IPAM         = "ipam/"
	Pools        = IPAM + "pools/"
	AllLeases    = IPAM + "addrs/"
	// SwarmServices holds the swarm census's records (package swarm).
	SwarmServices = "swarm/services/"
)

// Single keys.
const (
	// Claims holds the driver's subnet claims of network creates under way.
	Claims = "subnets"
	// PoolIndex is the IPAM's index of every pool's subnet.
	PoolIndex = IPAM + "subnets"
)

// Network is the cluster record of network net.
func Network(net string) string { return Networks + net }

// SwarmService is the census record of swarm service id.
func SwarmService(id string) string { return SwarmServices + id }

// VNI is the record of who holds vni.
func VNI(vni uint32) string { return VNIs + strconv.FormatUint(uint64(vni), 10) }

// ParseVNI returns the VNI of a key under VNIs.
func ParseVNI(key string) (uint32, bool) {
	rest, ok := strings.CutPrefix(key, VNIs)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(rest, 10, 32)
	return uint32(v), err == nil
}

// Host is the prefix of everything host keeps of its own.
func Host(host string) string { return Hosts + host + "/" }

// HostNetworks is the prefix of host's references to its Docker networks.
func HostNetworks(host string) string { return Host(host) + "networks/" }

// HostNetwork is host's reference from Docker network dockerID to its
// cluster network.
func HostNetwork(host, dockerID string) string { return HostNetworks(host) + dockerID }

// HostEndpoints is the prefix of host's own copies of its endpoints.
func HostEndpoints(host string) string { return Host(host) + "endpoints/" }

// HostEndpoint is host's own copy of its endpoint id.
func HostEndpoint(host, id string) string { return HostEndpoints(host) + id }

// Endpoints is the prefix of network net's endpoints.
func Endpoints(net string) string { return AllEndpoints + net + "/" }

// Endpoint is the record of endpoint id of network net.
func Endpoint(net, id string) string { return Endpoints(net) + id }

// MACs is the prefix of network net's MAC keys.
func MACs(net string) string { return AllMACs + net + "/" }

// MAC is the key that reserves mac in network net.
func MAC(net, mac string) string { return MACs(net) + mac }

// Changes is the change log of network net's endpoints.
func Changes(net string) string { return AllChanges + net }

// Heartbeat is host's heartbeat.
func Heartbeat(host string) string { return Heartbeats + host }

// Monitor is the record of liveness monitor slot slot.
func Monitor(slot int) string { return Monitors + strconv.Itoa(slot) }

// Pool is the record of IPAM pool id.
func Pool(id string) string { return Pools + id }

// Leases is the prefix of pool id's leases.
func Leases(id string) string { return AllLeases + id + "/" }

// Lease is the lease of address a in pool id.
func Lease(id string, a netip.Addr) string { return Leases(id) + a.String() }

// Last returns the last segment of key: the object it is about (a network,
// Docker network, endpoint, host, MAC, pool or address).
func Last(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// PoolID is the ID Docker is given for a subnet, and the key of the
// cluster network whose first subnet it is: stable across hosts and
// usable as one key segment.
func PoolID(subnet netip.Prefix) string {
	return strings.ReplaceAll(subnet.Masked().String(), "/", "_")
}

// ParsePoolID is the inverse of PoolID; ok is false for anything PoolID
// does not return.
func ParsePoolID(id string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(strings.Replace(id, "_", "/", 1))
	return p, err == nil && PoolID(p) == id
}

// Kind names the kind of a key vxnet writes, e.g. "endpoint" for
// endpoints/<net>/<id>; "" for a key of no kind vxnet writes. Checkers
// use it to say what a leaked key is.
func Kind(key string) string {
	seg := strings.Split(key, "/")
	for _, k := range kinds {
		if len(seg) == len(k.shape) && matches(seg, k.shape) {
			return k.name
		}
	}
	return ""
}

// kinds are the shapes of the keys in the package doc: a fixed segment,
// or "*" for an object's ID.
var kinds = []struct {
	name  string
	shape []string
}{
	{"network", []string{"networks", "*"}},
	{"vni", []string{"vnis", "*"}},
	{"host network", []string{"hosts", "*", "networks", "*"}},
	{"host endpoint", []string{"hosts", "*", "endpoints", "*"}},
	{"endpoint", []string{"endpoints", "*", "*"}},
	{"mac", []string{"macs", "*", "*"}},
	{"endpoint changes", []string{"changes", "*"}},
	{"subnet claims", []string{"subnets"}},
	{"heartbeat", []string{"alive", "*"}},
	{"liveness monitor", []string{"liveness", "*"}},
	{"pool index", []string{"ipam", "subnets"}},
	{"pool", []string{"ipam", "pools", "*"}},
	{"lease", []string{"ipam", "addrs", "*", "*"}},
	{"swarm service", []string{"swarm", "services", "*"}},
}

func matches(seg, shape []string) bool {
	for i, s := range shape {
		if seg[i] == "" || (s != "*" && s != seg[i]) {
			return false
		}
	}
	return true
}

// Examples returns one key of every kind, built by the builders above,
// for tests of checkers that must tell each kind.
func Examples() map[string]string {
	const net, host = "198.19.1.0_24", "198.18.0.11"
	return map[string]string{
		"network":          Network(net),
		"vni":              VNI(1048576),
		"host network":     HostNetwork(host, "0123456789ab"),
		"host endpoint":    HostEndpoint(host, "0123456789ab"),
		"endpoint":         Endpoint(net, "0123456789ab"),
		"mac":              MAC(net, "02:42:c6:13:01:02"),
		"endpoint changes": Changes(net),
		"subnet claims":    Claims,
		"heartbeat":        Heartbeat(host),
		"liveness monitor": Monitor(0),
		"pool index":       PoolIndex,
		"pool":             Pool(net),
		"lease":            Lease(net, netip.MustParseAddr("198.19.1.2")),
		"swarm service":    SwarmService("x2mqkd5yd3f7lq6fmzpxw3m3s"),
	}
}

// Package dataplane is vxnet's kernel data plane: the network namespaces,
// bridges, VXLAN devices, veth pairs and static neighbour/FDB entries that
// carry one multi-host L2 network, modelled on Docker's overlay driver.
//
// What it owns, per network (VNI):
//   - a network namespace bind-mounted at NetnsDir/vx-<vni>;
//   - inside it the bridge "br0" holding the gateway addresses, and the VXLAN
//     device "vxlan0" enslaved to it. vxlan0 is created in the caller's (host)
//     namespace and then moved in, so its UDP socket stays in the underlay
//     namespace while its L2 side lives in the network namespace;
//   - one veth pair per endpoint: "vxc<id12>" stays in the host namespace for
//     Docker to move into the container, "vxp<id12>" is a port of br0;
//   - on vxlan0, one permanent neighbour entry (IP → MAC, answered by the
//     VXLAN ARP/ND proxy), one static FDB entry (MAC → remote VTEP) and one
//     bridge entry (MAC → port vxlan0) per remote endpoint, and one flood
//     entry per remote VTEP (peers.go). Learning is off: the kernel only
//     knows what SetPeers wrote, so the data plane converges to the store;
//   - in the host namespace, the nftables table "inet vxnet" admitting a
//     network's VXLAN packets only from its peers' VTEPs (filter.go).
//
// Invariants:
//   - Every Ensure* call is create-or-verify: matching state is left alone,
//     drifted state is repaired in place or recreated, and on failure what
//     the call created is undone in reverse order.
//   - Every Delete* call is idempotent: something already gone is not an error.
//   - Code that runs inside a namespace goes through onLockedThread, the one
//     place that switches a thread's netns; no other code calls setns.
//   - Host-side netlink calls run on the calling goroutine, in the caller's
//     namespace (the host's in production, a throwaway one in tests).
//   - A Plane serializes its own calls; it holds no package-level state.
package dataplane

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/errkind"
)

// ErrInvalid is wrapped by every error about a bad argument, returned before
// the kernel is touched.
var ErrInvalid = errkind.New(errkind.BadRequest, "invalid argument")

// ErrVNIInUse is wrapped when the kernel refuses a network's VXLAN device
// because another VXLAN device in the host namespace holds the same VNI and
// UDP port (Docker's swarm ingress holds VNI 4096 on port 4789).
var ErrVNIInUse = errkind.New(errkind.Conflict, "VNI in use by another VXLAN device")

// ErrNotFound is wrapped when an operation needs a network that does not
// exist (no live namespace file for the VNI).
var ErrNotFound = errkind.New(errkind.NotFound, "not found")

const (
	nsPrefix   = "vx-"
	bridgeName = "br0"
	vxlanName  = "vxlan0"
	hostPrefix = "vxc" // container side of an endpoint's veth pair
	portPrefix = "vxp" // bridge side of an endpoint's veth pair
	idPrefix   = 12    // endpoint ID characters used in interface names (ShortID)
	maxVNI     = 1<<24 - 1
)

// ShortID is the part of an endpoint ID the data plane names the
// endpoint by: its first 12 characters, as in its veth names and in what
// Endpoints returns (all of id when it is shorter).
func ShortID(id string) string { return id[:min(idPrefix, len(id))] }

// Options configures a Plane.
type Options struct {
	// NetnsDir holds the bind-mounted namespace files, e.g. /run/vxnet/netns.
	// It is created (0700) if missing and made a shared mount point, as
	// iproute2 does for /run/netns, so namespace mounts and unmounts
	// propagate to mount namespaces that copied it.
	NetnsDir string
	// SysctlDir is where a writable /proc/sys is mounted; "" means
	// /proc/sys. A managed plugin's own /proc/sys is read-only (the OCI
	// runtime makes it so), so the plugin mounts a fresh procfs elsewhere.
	SysctlDir string
	// Log receives Info for state changes and Debug for each kernel call.
	// Nil means the logrus standard logger.
	Log *logrus.Entry
}

// Plane manages the kernel objects of vxnet networks on this host.
type Plane struct {
	dir    string
	sysctl string // a writable /proc/sys
	log    *logrus.Entry
	// mu orders namespace lifecycles against work inside namespaces:
	// EnsureNetwork (to repair, intact.go) and DeleteNetwork hold it
	// alone; endpoint and peer operations share it and run in parallel
	// (distinct links, or one SetPeers at a time under peerMu). A single
	// lock made fifty parallel
	// `docker run` on one host wait for each other's netlink calls, which a
	// busy kernel makes slow, past the 10 s callback bound.
	mu     sync.RWMutex
	peerMu sync.Mutex // one SetPeers at a time: each converges vxlan0's whole table
	// egressMu: one network's own egress at a time (egress.go), as each
	// picks its link addresses from those of the host.
	egressMu sync.Mutex
	// egressVNIs are the networks that may have host rules of their own
	// egress (egress_host.go): those ensureEgress made, and those the
	// first look at the rules found (egressScanned). DeleteNetwork looks
	// for rules of these alone, so hosts without the option run no
	// iptables command; egressMu guards both.
	egressVNIs    map[uint32]bool
	egressScanned bool
	// held are the sockets holding the host ports published per endpoint
	// (id12, publish.go); egressMu guards it.
	held map[string][]io.Closer
}

// New prepares NetnsDir and returns a Plane using it.
func New(o Options) (*Plane, error) {
	if o.NetnsDir == "" || !filepath.IsAbs(o.NetnsDir) {
		return nil, invalid("netns dir %q must be an absolute path", o.NetnsDir)
	}
	log := o.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	sysctl := o.SysctlDir
	if sysctl == "" {
		sysctl = "/proc/sys"
	}
	if !filepath.IsAbs(sysctl) {
		return nil, invalid("sysctl dir %q must be an absolute path", sysctl)
	}
	sysctl = filepath.Clean(sysctl)
	// A wrong dir would look like a kernel without IPv6 (nothing to set),
	// so insist on a /proc/sys.
	if fi, err := os.Stat(filepath.Join(sysctl, "net")); err != nil || !fi.IsDir() {
		return nil, invalid("sysctl dir %q holds no net/: want a /proc/sys", sysctl)
	}
	dir := filepath.Clean(o.NetnsDir)
	if err := ensureNetnsDir(log, dir); err != nil {
		return nil, err
	}
	return &Plane{dir: dir, sysctl: sysctl, log: log, held: map[string][]io.Closer{}}, nil
}

// Networks returns, sorted, the VNIs whose namespace files in NetnsDir are
// live namespace mounts. VXLAN filters of VNIs without one, left by a crash
// between removing a namespace and its filter, are removed on the way: the
// filter never exists without the namespace otherwise (EnsureNetwork makes
// it last, DeleteNetwork removes it last, both under the exclusive lock).
func (p *Plane) Networks() ([]uint32, error) {
	vnis, err := p.liveNetworks()
	if err != nil {
		return nil, err
	}
	if err := p.removeStaleFilters(); err != nil {
		return nil, err
	}
	return vnis, p.removeStaleEgress()
}

// removeStaleEgress deletes the host's egress rules of VNIs without a live
// namespace, and the host side of their links. Such rules are left only by a
// plugin that died between the two, so it looks once, at the first call
// (reconcile at start); afterwards DeleteNetwork removes them.
func (p *Plane) removeStaleEgress() error {
	defer p.lockEgress()()
	if p.egressScanned {
		return nil
	}
	var ferr error
	stale := map[uint32]bool{}
	err := pruneHostRules(p.log, func(link, _ string) bool {
		vni, ok := egressLinkVNI(link)
		if !ok {
			return false
		}
		p.markEgress(vni)
		live, err := isNetnsMount(p.nsPath(vni))
		ferr = errors.Join(ferr, err)
		if err == nil && !live && !stale[vni] {
			stale[vni] = true
			p.log.WithField("vni", vni).Warn("removing the egress rules of a network with no namespace")
		}
		return err == nil && !live
	})
	// The host side of the pair goes with the namespace only when the
	// kernel destroys it: not while something still holds it, and not
	// at once (the teardown is asynchronous).
	for vni := range stale {
		_, lerr := deleteLink(p.log.WithField("vni", vni), egressHostLink(vni))
		ferr = errors.Join(ferr, lerr)
	}
	if err = errors.Join(err, ferr); err == nil {
		p.egressScanned = true
	}
	return err
}

// markEgress records that vni may have egress rules; the caller holds
// egressMu.
func (p *Plane) markEgress(vni uint32) {
	if p.egressVNIs == nil {
		p.egressVNIs = map[uint32]bool{}
	}
	p.egressVNIs[vni] = true
}

// deleteEgressRules removes vni's host rules if it may have any; the
// caller holds mu.
func (p *Plane) deleteEgressRules(log *logrus.Entry, vni uint32) error {
	p.egressMu.Lock()
	defer p.egressMu.Unlock()
	if p.egressScanned && !p.egressVNIs[vni] {
		return nil
	}
	if err := deleteHostRules(log, vni); err != nil {
		return err
	}
	delete(p.egressVNIs, vni)
	return nil
}

// removeStaleFilters deletes the filters of VNIs without a live namespace.
// It looks for them sharing the lock with the endpoint calls and holds it
// alone only to delete: reconcile lists the networks every round, and
// holding the lock alone for the look made every endpoint call of the
// moment wait (issue #13: most of the lock waits of Leave and
// DeleteEndpoint while the bench's Scale step removed 1000 endpoints).
func (p *Plane) removeStaleFilters() error {
	p.mu.RLock()
	stale, err := p.staleFilters()
	p.mu.RUnlock()
	if err != nil || len(stale) == 0 {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if stale, err = p.staleFilters(); err != nil {
		return err
	}
	for _, vni := range stale {
		p.log.WithField("vni", vni).Warn("removing the VXLAN filter of a network with no namespace")
		if err := deleteFilter(p.log.WithField("vni", vni), vni); err != nil {
			return err
		}
	}
	return nil
}

// staleFilters lists the VNIs that have a filter and no live namespace;
// the caller holds mu.
func (p *Plane) staleFilters() ([]uint32, error) {
	vnis, err := filterVNIs()
	if err != nil {
		return nil, err
	}
	var stale []uint32
	for _, vni := range vnis {
		live, err := isNetnsMount(p.nsPath(vni))
		if err != nil {
			return nil, err
		}
		if !live {
			stale = append(stale, vni)
		}
	}
	return stale, nil
}

func (p *Plane) liveNetworks() ([]uint32, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("list netns dir %q: %w", p.dir, err)
	}
	var vnis []uint32
	for _, e := range entries {
		vni, ok := parseNsName(e.Name())
		if !ok {
			continue
		}
		live, err := isNetnsMount(filepath.Join(p.dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if live {
			vnis = append(vnis, vni)
		}
	}
	sort.Slice(vnis, func(i, j int) bool { return vnis[i] < vnis[j] })
	return vnis, nil
}

// nsPath is the namespace file of a network.
func (p *Plane) nsPath(vni uint32) string {
	return filepath.Join(p.dir, nsPrefix+strconv.FormatUint(uint64(vni), 10))
}

// liveNs returns the namespace file of a network, or an error wrapping
// ErrNotFound when it is not a live namespace mount.
func (p *Plane) liveNs(vni uint32) (string, error) {
	path := p.nsPath(vni)
	live, err := isNetnsMount(path)
	if err != nil {
		return "", err
	}
	if !live {
		return "", fmt.Errorf("network namespace %q (vni %d): %w", path, vni, ErrNotFound)
	}
	return path, nil
}

// parseNsName returns the VNI of a canonical namespace file name "vx-<vni>".
func parseNsName(name string) (uint32, bool) {
	s, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 || v > maxVNI || strconv.FormatUint(v, 10) != s {
		return 0, false
	}
	return uint32(v), true
}

// invalid returns an error wrapping ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

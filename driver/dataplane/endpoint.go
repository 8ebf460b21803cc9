package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
)

// EndpointConfig describes one local endpoint of a network.
type EndpointConfig struct {
	VNI uint32
	ID  string           // Docker endpoint ID (64 hex chars); names use a prefix of it
	MAC net.HardwareAddr // MAC of the container-side interface
	MTU int
}

// endpointNames are the interface names of one endpoint's veth pair.
type endpointNames struct {
	host string // container side, in the host namespace until Docker moves it
	port string // bridge side, a port of br0 in the network namespace
}

func namesFor(id string) endpointNames {
	return endpointNames{host: hostPrefix + ShortID(id), port: portPrefix + ShortID(id)}
}

// EnsureEndpoint creates the endpoint's veth pair, or verifies it, and
// returns the name of the container side in the host namespace. The
// container side keeps c.MAC and c.MTU and stays down for Docker to move;
// the bridge side is an up port of br0. A pair that is incomplete or
// differs is recreated, so call it only before Docker has taken the
// container side. The network must exist (else ErrNotFound).
func (p *Plane) EnsureEndpoint(c EndpointConfig) (ifName string, err error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	n := namesFor(c.ID)
	log := p.log.WithFields(logrus.Fields{"vni": c.VNI, "endpoint": ShortID(c.ID)})
	path, err := p.liveNs(c.VNI)
	if err != nil {
		return "", err
	}
	intact, err := endpointIntact(log, path, n, c)
	if err != nil {
		return "", fmt.Errorf("inspect endpoint %q (vni %d): %w", n.host, c.VNI, err)
	}
	if intact {
		if err := inNetns(log, path, func() error { return attachPort(log, n.port, c.MTU) }); err != nil {
			return "", fmt.Errorf("attach endpoint port %q (vni %d): %w", n.port, c.VNI, err)
		}
		return n.host, nil
	}
	if err := deleteEndpointLinks(log, path, n); err != nil {
		return "", fmt.Errorf("clear partial endpoint %q (vni %d): %w", n.host, c.VNI, err)
	}
	var rb rollback
	defer func() { err = rb.finish(log, err) }()
	if err := createVeth(log, path, n, c); err != nil {
		return "", err
	}
	rb.push("veth "+n.host, func() error { return deleteEndpointLinks(log, path, n) })
	if err := inNetns(log, path, func() error { return attachPort(log, n.port, c.MTU) }); err != nil {
		return "", fmt.Errorf("attach endpoint port %q (vni %d): %w", n.port, c.VNI, err)
	}
	log.WithFields(logrus.Fields{"link": n.host, "port": n.port, "mac": c.MAC}).Info("created endpoint")
	return n.host, nil
}

// createVeth creates the pair in the host namespace with the bridge side
// placed directly into the network namespace, so no state exists where
// both ends are in the host.
func createVeth(log *logrus.Entry, path string, n endpointNames, c EndpointConfig) error {
	return withNsFd(path, func(fd int) error {
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: n.host, MTU: c.MTU, HardwareAddr: c.MAC},
			PeerName:      n.port,
			PeerMTU:       uint32(c.MTU),
			PeerNamespace: netlink.NsFd(fd),
		}
		if err := addLink(log, v); err != nil {
			return fmt.Errorf("create endpoint (vni %d) into netns %q: %w", c.VNI, path, err)
		}
		return nil
	})
}

// endpointIntact reports whether the host side exists with the right MAC and
// MTU and is the veth peer of the bridge side in the network namespace.
func endpointIntact(log *logrus.Entry, path string, n endpointNames, c EndpointConfig) (bool, error) {
	hl, err := linkByName(log, n.host)
	if err != nil {
		return false, err
	}
	host, ok := hl.(*netlink.Veth)
	if !ok || host.MTU != c.MTU || !bytes.Equal(host.HardwareAddr, c.MAC) {
		return false, nil
	}
	intact := false
	err = inNetns(log, path, func() error {
		pl, err := linkByName(log, n.port)
		port, ok := pl.(*netlink.Veth)
		intact = ok && port.ParentIndex == host.Index && host.ParentIndex == port.Index
		return err
	})
	return intact, err
}

// deleteEndpointLinks removes whatever exists of an endpoint: the bridge side
// in the network namespace (if the namespace is live), and the host side or a
// stray bridge side in the host namespace. Deleting one end of a veth pair
// deletes the other, wherever it is.
func deleteEndpointLinks(log *logrus.Entry, path string, n endpointNames) error {
	live, err := isNetnsMount(path)
	if err != nil {
		return err
	}
	var nsDeleted bool
	if live {
		err = inNetns(log, path, func() error {
			var err error
			nsDeleted, err = deleteLink(log, n.port)
			return err
		})
		if err != nil {
			return err
		}
	}
	hostDeleted, herr := deleteLink(log, n.host)
	strayDeleted, serr := deleteLink(log, n.port)
	if nsDeleted || hostDeleted || strayDeleted {
		log.WithField("link", n.host).Info("deleted endpoint")
	}
	return errors.Join(herr, serr)
}

// DeleteEndpoint removes the endpoint's veth pair. A missing endpoint or
// network is not an error.
func (p *Plane) DeleteEndpoint(vni uint32, id string) error {
	if err := validateVNI(vni); err != nil {
		return err
	}
	if err := validateID(id); err != nil {
		return err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	n := namesFor(id)
	log := p.log.WithFields(logrus.Fields{"vni": vni, "endpoint": ShortID(id)})
	if err := deleteEndpointLinks(log, p.nsPath(vni), n); err != nil {
		return fmt.Errorf("delete endpoint %q (vni %d): %w", n.host, vni, err)
	}
	return nil
}

// Endpoints returns, sorted, the endpoint ID prefixes whose bridge side is a
// port of br0 in the network's namespace.
//
// It lists them beside the endpoint calls, sharing the Plane's lock. A
// listing that ports added or removed meanwhile kept interrupting (the
// kernel marks such a dump incomplete) is made once more with the lock held
// alone, for as long as the listing takes: at 1000 endpoints the Joins
// being made changed the namespace during most listings, and each failed
// one sent reconcile to a round that held the driver's lock alone, all
// Joins waiting for all of its reads (issue #13).
func (p *Plane) Endpoints(vni uint32) ([]string, error) {
	if err := validateVNI(vni); err != nil {
		return nil, err
	}
	p.mu.RLock()
	ids, err := p.ports(vni)
	p.mu.RUnlock()
	if !errors.Is(err, netlink.ErrDumpInterrupted) {
		return ids, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ports(vni)
}

// ports is Endpoints; the caller holds mu.
func (p *Plane) ports(vni uint32) ([]string, error) {
	path, err := p.liveNs(vni)
	if err != nil {
		return nil, err
	}
	log := p.log.WithField("vni", vni)
	var ids []string
	err = inNetns(log, path, func() error {
		br, err := mustLink(log, bridgeName)
		if err != nil {
			return err
		}
		log.Debug("netlink: list bridge ports")
		ports, err := bridgePorts(br.Attrs().Index)
		for _, name := range ports {
			if id, ok := strings.CutPrefix(name, portPrefix); ok {
				ids = append(ids, id)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list endpoints (vni %d) in netns %q: %w", vni, path, err)
	}
	sort.Strings(ids)
	return ids, nil
}

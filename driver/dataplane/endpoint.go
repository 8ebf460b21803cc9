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
	"github.com/vishvananda/netns"
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
//
// It enters the network's namespace once (plugPort): the host side is
// looked at from the calling thread, the port is checked, or the pair
// created, and attached to br0 in one switch. Each switch of a Join had
// cost as much as a store read on a loaded host, growing with the load
// (1 → 2 ms at 1000 endpoints, issue #13). Only a pair whose container
// side matches but is not the port's peer takes a second round.
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
	host, err := hostSide(log, n, c)
	if err != nil {
		return "", fmt.Errorf("inspect endpoint %q (vni %d): %w", n.host, c.VNI, err)
	}
	ok, err := plugPort(log, path, n, c, host)
	if err == nil && !ok {
		if err = deleteEndpointLinks(log, path, n); err != nil {
			return "", fmt.Errorf("clear partial endpoint %q (vni %d): %w", n.host, c.VNI, err)
		}
		ok, err = plugPort(log, path, n, c, nil)
	}
	if err == nil && !ok {
		err = fmt.Errorf("endpoint %q: pair not created", n.host) // plugPort without a host side creates or fails
	}
	if err != nil {
		return "", fmt.Errorf("attach endpoint port %q (vni %d): %w", n.port, c.VNI, err)
	}
	return n.host, nil
}

// hostSide returns the container side of the endpoint in the host
// namespace if it is a veth with c's MAC and MTU. One that differs is
// deleted (with its peer, wherever it is), and so is a bridge side left in
// the host namespace: then nothing of the endpoint is left here, and nil
// is returned.
func hostSide(log *logrus.Entry, n endpointNames, c EndpointConfig) (*netlink.Veth, error) {
	hl, err := linkByName(log, n.host)
	if err != nil {
		return nil, err
	}
	if v, ok := hl.(*netlink.Veth); ok && v.MTU == c.MTU && bytes.Equal(v.HardwareAddr, c.MAC) {
		return v, nil
	}
	hostDeleted, herr := deleteLink(log, n.host)
	strayDeleted, serr := deleteLink(log, n.port)
	if hostDeleted || strayDeleted {
		log.WithField("link", n.host).Info("deleted endpoint")
	}
	return nil, errors.Join(herr, serr)
}

// plugPort does, in one switch into the network namespace at path, what
// needs the namespace. With host, the container side hostSide found, it
// reports whether the port is host's veth peer and, if so, attaches it to
// br0. Without, it removes a stale port, creates the pair from inside the
// namespace with the container side placed into the host namespace (the
// calling thread's), so no state exists where both ends are in the host,
// and attaches the port; a failed attach deletes the pair again.
func plugPort(log *logrus.Entry, path string, n endpointNames, c EndpointConfig, host *netlink.Veth) (bool, error) {
	var hostNs netns.NsHandle = -1
	if host == nil {
		h, err := currentNetns()
		if err != nil {
			return false, err
		}
		defer h.Close()
		hostNs = h
	}
	ok := false
	err := inNetns(log, path, func() error {
		pl, err := linkByName(log, n.port)
		if err != nil {
			return err
		}
		if host != nil {
			port, isVeth := pl.(*netlink.Veth)
			if !isVeth || port.ParentIndex != host.Index || host.ParentIndex != port.Index {
				return nil
			}
			ok = true
			return attachPort(log, n.port, c.MTU)
		}
		if _, err := deleteLink(log, n.port); err != nil {
			return err
		}
		v := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: n.port, MTU: c.MTU},
			PeerName:         n.host,
			PeerMTU:          uint32(c.MTU),
			PeerHardwareAddr: c.MAC,
			PeerNamespace:    netlink.NsFd(hostNs),
		}
		if err := addLink(log, v); err != nil {
			return fmt.Errorf("create endpoint (vni %d) in netns %q: %w", c.VNI, path, err)
		}
		if err := attachPort(log, n.port, c.MTU); err != nil {
			_, derr := deleteLink(log, n.port) // and with it the container side
			return errors.Join(err, derr)
		}
		ok = true
		log.WithFields(logrus.Fields{"link": n.host, "port": n.port, "mac": c.MAC}).Info("created endpoint")
		return nil
	})
	return ok, err
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

package dataplane

import (
	"net"
	"net/netip"
	"slices"
)

// Input validation, done before any kernel call. Every error wraps
// ErrInvalid and names the offending value.

const (
	minMTU = 68
	maxMTU = 65535
)

func validateVNI(vni uint32) error {
	if vni < 1 || vni > maxVNI {
		return invalid("vni %d out of range 1..%d", vni, maxVNI)
	}
	return nil
}

func validateMTU(mtu int) error {
	if mtu < minMTU || mtu > maxMTU {
		return invalid("mtu %d out of range %d..%d", mtu, minMTU, maxMTU)
	}
	return nil
}

// validateID checks a Docker endpoint ID: lower-case hex, at least idPrefix
// characters (interface names use its first idPrefix characters).
func validateID(id string) error {
	if len(id) < idPrefix {
		return invalid("endpoint id %q shorter than %d characters", id, idPrefix)
	}
	for _, r := range id {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return invalid("endpoint id %q is not lower-case hex", id)
		}
	}
	return nil
}

func validateMAC(what string, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return invalid("%s mac %q is not 6 bytes", what, mac.String())
	}
	return nil
}

func (c NetworkConfig) validate() error {
	if err := validateVNI(c.VNI); err != nil {
		return err
	}
	if c.Port < 1 || c.Port > 65535 {
		return invalid("vxlan port %d out of range 1..65535 (vni %d)", c.Port, c.VNI)
	}
	if c.LocalIP != nil && c.LocalIP.To16() == nil {
		return invalid("local ip %q is not an IP address (vni %d)", c.LocalIP.String(), c.VNI)
	}
	if err := validateMTU(c.MTU); err != nil {
		return err
	}
	seen := make(map[netip.Prefix]bool)
	for _, a := range c.Addresses {
		if !a.IsValid() || a.Addr().Is4In6() || a.Addr().IsUnspecified() {
			return invalid("gateway address %q is not a valid prefix (vni %d)", a.String(), c.VNI)
		}
		if seen[a] {
			return invalid("gateway address %q given twice (vni %d)", a.String(), c.VNI)
		}
		seen[a] = true
	}
	if c.Egress && !slices.ContainsFunc(c.Addresses, func(a netip.Prefix) bool { return a.Addr().Is4() }) {
		return invalid("egress needs an IPv4 gateway address (vni %d)", c.VNI)
	}
	return nil
}

func (c EndpointConfig) validate() error {
	if err := validateVNI(c.VNI); err != nil {
		return err
	}
	if err := validateID(c.ID); err != nil {
		return err
	}
	if err := validateMAC("endpoint "+ShortID(c.ID), c.MAC); err != nil {
		return err
	}
	if c.MAC[0]&1 != 0 {
		return invalid("endpoint %s mac %q is multicast", ShortID(c.ID), c.MAC.String())
	}
	return validateMTU(c.MTU)
}

// validatePeers checks a peer list: valid addresses, 6-byte MACs, one MAC per
// IP and one VTEP per MAC (the kernel could not hold anything else).
func validatePeers(vni uint32, peers []Peer) error {
	ipMAC := make(map[netip.Addr]string)
	macVTEP := make(map[string]netip.Addr)
	for _, pr := range peers {
		ip := pr.IP.Unmap()
		if !ip.IsValid() || ip.IsUnspecified() {
			return invalid("peer ip %q is not valid (vni %d)", pr.IP.String(), vni)
		}
		if err := validateMAC("peer "+ip.String(), pr.MAC); err != nil {
			return err
		}
		vtep, ok := netip.AddrFromSlice(pr.VTEP)
		if !ok || vtep.Unmap().IsUnspecified() {
			return invalid("peer %s vtep %q is not valid (vni %d)", ip, pr.VTEP.String(), vni)
		}
		mac := pr.MAC.String()
		if m, dup := ipMAC[ip]; dup && m != mac {
			return invalid("peer ip %s has two macs %s and %s (vni %d)", ip, m, mac, vni)
		}
		if v, dup := macVTEP[mac]; dup && v != vtep.Unmap() {
			return invalid("peer mac %s has two vteps %s and %s (vni %d)", mac, v, vtep.Unmap(), vni)
		}
		ipMAC[ip] = mac
		macVTEP[mac] = vtep.Unmap()
	}
	return nil
}

// ValidatePeers is the check SetPeers makes of its peer list, for callers
// that must only ever build lists that pass it.
func ValidatePeers(vni uint32, peers []Peer) error { return validatePeers(vni, peers) }

package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
)

// nsSysctl is one setting of a network's namespace.
type nsSysctl struct {
	key   string // under /proc/sys
	value string
}

// namespaceSysctls are the settings every network namespace gets:
//
//   - IPv6 duplicate address detection off for interfaces created in (or
//     moved into) the namespace: br0's link-local address and the ports'
//     would otherwise sit tentative after every change. Gateway addresses
//     are added with nodad as well.
//   - Bridge netfilter off. With br_netfilter in the kernel (dockerd loads
//     it) a new namespace starts with bridge-nf-call-iptables=1, and every
//     frame br0 forwards goes through the IPv4/IPv6/ARP hooks of the
//     namespace (br_nf_pre_routing, br_nf_forward_ip, br_nf_post_routing),
//     which hold no rule: nothing filters inside a network's namespace
//     (the VXLAN filter lives in the host's, filter.go). Off, br0 skips
//     that work for every frame, on the sending and the receiving host.
func namespaceSysctls() []nsSysctl {
	return []nsSysctl{
		{"net/ipv6/conf/default/accept_dad", "0"},
		{"net/bridge/bridge-nf-call-iptables", "0"},
		{"net/bridge/bridge-nf-call-ip6tables", "0"},
		{"net/bridge/bridge-nf-call-arptables", "0"},
	}
}

// setNamespaceSysctls writes namespaceSysctls where they differ, so a
// value changed behind vxnet's back (or reset by br_netfilter loading
// after the namespace was made) is repaired by the next EnsureNetwork. A
// key the kernel lacks (no IPv6, no br_netfilter) has nothing to set. dir
// is a /proc/sys; its net/ tree is that of the calling thread's namespace
// whatever procfs instance it belongs to.
func setNamespaceSysctls(log *logrus.Entry, dir string) error {
	for _, s := range namespaceSysctls() {
		if err := ensureSysctl(log, filepath.Join(dir, s.key), s.value); err != nil {
			return err
		}
	}
	return nil
}

// ensureSysctl writes value to key unless it holds it; a missing key is
// not an error.
func ensureSysctl(log *logrus.Entry, key, value string) error {
	have, err := os.ReadFile(key)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read sysctl %q: %w", key, err)
	}
	if string(bytes.TrimSpace(have)) == value {
		return nil
	}
	log.WithFields(logrus.Fields{"sysctl": key, "from": string(bytes.TrimSpace(have)), "to": value}).Debug("sysctl: write")
	if err := os.WriteFile(key, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %q to %s: %w", key, value, err)
	}
	return nil
}

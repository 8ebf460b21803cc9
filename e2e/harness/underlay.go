package harness

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// createBridge makes the underlay bridge in the root namespace. Cleanup
// ran before, so it must not exist yet.
func createBridge() error {
	steps := [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", bridgeCIDR, "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
	}
	for _, s := range steps {
		if _, err := ipCmd(s...); err != nil {
			return fmt.Errorf("create underlay bridge %q: %w", bridgeName, err)
		}
	}
	return nil
}

// createUnderlay makes the host's network namespace and plugs it into the
// bridge: vxe2e-hN-veth in the root namespace, eth0 inside.
func (h *Host) createUnderlay() error {
	ns := h.Netns
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", h.vethName(), "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", h.vethName(), "master", bridgeName, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", h.IP + underlayMask, "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", Gateway},
	}
	for _, s := range steps {
		if _, err := ipCmd(s...); err != nil {
			return fmt.Errorf("create underlay of host %q (%s): %w", h.Name, h.IP, err)
		}
	}
	return nil
}

func (h *Host) vethName() string {
	return h.Name + "-veth"
}

// linkNames lists the link names in a network namespace ("" for the root
// one), sorted.
func linkNames(netns string) ([]string, error) {
	args := []string{"-j", "link", "show"}
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	out, err := ipCmd(args...)
	if err != nil {
		return nil, err
	}
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("parse ip -j link output of netns %q: %w", netns, err)
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, l.Name)
	}
	sort.Strings(names)
	return names, nil
}

// rootLinks lists the harness's links in the root namespace.
func rootLinks() ([]string, error) {
	all, err := linkNames("")
	if err != nil {
		return nil, err
	}
	var ours []string
	for _, n := range all {
		if strings.HasPrefix(n, namePrefix) {
			ours = append(ours, n)
		}
	}
	return ours, nil
}

// deleteLink removes a link of the root namespace; a missing one is fine.
func deleteLink(name string) error {
	out, err := ipCmd("link", "del", name)
	if err != nil && !strings.Contains(out, "Cannot find device") {
		return fmt.Errorf("delete link %q: %w", name, err)
	}
	return nil
}

// SetUnderlay switches the host's underlay link on or off (its end on the
// underlay bridge): off, the host is cut off as a switched-off machine is,
// and answers nothing.
func (h *Host) SetUnderlay(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if _, err := ipCmd("link", "set", h.vethName(), state); err != nil {
		return fmt.Errorf("underlay of host %q %s: %w", h.Name, state, err)
	}
	return nil
}

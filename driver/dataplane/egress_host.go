package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// The host's part of a network's own egress is three iptables rules in two
// chains of vxnet's, each jumped to from the top of Docker's:
//
//	-t filter -A VXNET-EGRESS -i vxe-<vni> -j ACCEPT
//	-t filter -A VXNET-EGRESS -o vxe-<vni> -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//	-t nat    -A VXNET-EGRESS -s <namespace side>/32 ! -o vxe-<vni> -j MASQUERADE
//	(FORWARD -j VXNET-EGRESS, POSTROUTING -j VXNET-EGRESS)
//
// iptables, not an nftables table of vxnet's own: dockerd sets the policy
// of iptables' FORWARD chain to DROP, and an accept in another nftables
// base chain does not overrule a drop at the same hook, so forwarded
// traffic must be accepted in that chain. The iptables command must
// therefore be on the plugin's PATH (it is on a host; a managed plugin's
// rootfs has none, and egress=own then fails with an error saying so).
// Each rule names vxe-<vni>, which is how leftovers of a network gone
// (a crash between removing the namespace and the rules) are found and
// removed (removeStaleEgress).

const egressChain = "VXNET-EGRESS"

// iptablesTimeout bounds one iptables command (-w waits for the xtables
// lock within it).
const iptablesTimeout = 10 * time.Second

// errNoIptables is returned when the iptables command is missing.
var errNoIptables = errors.New("the iptables command is not on the plugin's PATH (vxnet.egress=own needs it to accept forwarded traffic in Docker's FORWARD chain)")

func iptables(log *logrus.Entry, args ...string) (string, error) {
	path, err := exec.LookPath("iptables")
	if err != nil {
		return "", errNoIptables
	}
	ctx, cancel := context.WithTimeout(context.Background(), iptablesTimeout)
	defer cancel()
	full := append([]string{"-w", "5"}, args...)
	log.WithField("args", strings.Join(full, " ")).Debug("iptables")
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, full...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// hostRule is one rule of a network in vxnet's chain of table.
type hostRule struct {
	table string
	spec  []string
}

func hostRules(vni uint32, pair egressPair) []hostRule {
	l := egressHostLink(vni)
	return []hostRule{
		{"filter", []string{"-i", l, "-j", "ACCEPT"}},
		{"filter", []string{"-o", l, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}},
		{"nat", []string{"-s", pair.ns.String() + "/32", "!", "-o", l, "-j", "MASQUERADE"}},
		// Published ports reached at 127.0.0.0/8 (publish.go).
		{"nat", []string{"-s", "127.0.0.0/8", "-o", l, "-j", "MASQUERADE"}},
	}
}

// hostChain is one chain of vxnet's in table, jumped to from the top of
// each of jumps (the hook chain, then any matches of the jump).
type hostChain struct {
	table, name string
	jumps       [][]string
}

func (c hostChain) jumpSpec(j []string) []string {
	return append(append([]string{}, j...), "-j", c.name)
}

var (
	filterChain = hostChain{"filter", egressChain, [][]string{{"FORWARD"}}}
	natChain    = hostChain{"nat", egressChain, [][]string{{"POSTROUTING"}}}
	// portsChain holds the DNAT rules of published ports (publish.go),
	// for packets to an address of the host from elsewhere and from the
	// host itself.
	portsChain = hostChain{"nat", portsChainName, [][]string{
		{"PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL"},
		{"OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL"},
	}}
	hostChains = []hostChain{filterChain, natChain, portsChain}
)

// ensureChain makes c and its jumps exist and returns its rules (`iptables
// -S` lines).
func ensureChain(log *logrus.Entry, c hostChain) ([]string, error) {
	out, err := iptables(log, "-t", c.table, "-S", c.name)
	if errors.Is(err, errNoIptables) {
		return nil, err
	}
	if err != nil {
		if _, err := iptables(log, "-t", c.table, "-N", c.name); err != nil {
			return nil, err
		}
	}
	for _, j := range c.jumps {
		if _, err := iptables(log, append([]string{"-t", c.table, "-C"}, c.jumpSpec(j)...)...); err != nil {
			if _, err := iptables(log, append([]string{"-t", c.table, "-I", j[0], "1"}, c.jumpSpec(j)[1:]...)...); err != nil {
				return nil, err
			}
		}
	}
	return strings.Split(out, "\n"), nil
}

// ensureHostRules adds what is missing of the chains, jumps and vni's
// rules: four iptables commands when nothing is (reconcile runs it every
// round).
func ensureHostRules(log *logrus.Entry, vni uint32, pair egressPair) error {
	have := map[string]bool{}
	for _, c := range []hostChain{filterChain, natChain} {
		lines, err := ensureChain(log, c)
		if err != nil {
			return err
		}
		for _, line := range lines {
			have[c.table+" "+strings.TrimSpace(line)] = true
		}
	}
	for _, r := range hostRules(vni, pair) {
		if have[r.table+" -A "+egressChain+" "+strings.Join(r.spec, " ")] {
			continue
		}
		if _, err := iptables(log, append([]string{"-t", r.table, "-A", egressChain}, r.spec...)...); err != nil {
			return err
		}
	}
	return nil
}

// deleteHostRules removes every rule of vxnet's chains naming vni's link,
// and the chains (with their jumps) once empty. Nothing to remove, or no
// iptables command (then vxnet made none), is not an error.
func deleteHostRules(log *logrus.Entry, vni uint32) error {
	return pruneHostRules(log, func(link, _ string) bool { return link == egressHostLink(vni) })
}

// pruneHostRules deletes the rules of vxnet's chains whose owner (the vxe-
// link they name, and the endpoint of a published port's rule, "" for a
// network's own) gone says so, then the chains left empty.
func pruneHostRules(log *logrus.Entry, gone func(link, endpoint string) bool) error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	for _, c := range hostChains {
		out, err := iptables(log, "-t", c.table, "-S", c.name)
		if err != nil {
			continue // no chain: nothing of vxnet's in it
		}
		left := 0
		for _, line := range strings.Split(out, "\n") {
			f := ruleFields(line)
			if len(f) < 2 || f[0] != "-A" {
				continue
			}
			link, ep := ruleOwner(f)
			if link == "" || !gone(link, ep) {
				left++
				continue
			}
			if _, err := iptables(log, append([]string{"-t", c.table, "-D"}, f[1:]...)...); err != nil {
				return err
			}
			log.WithFields(logrus.Fields{"table": c.table, "rule": line}).Info("removed egress rule")
		}
		if left > 0 {
			continue
		}
		for _, j := range c.jumps {
			if _, err := iptables(log, append([]string{"-t", c.table, "-D"}, c.jumpSpec(j)...)...); err != nil {
				log.WithError(err).Debug("no jump to remove")
			}
		}
		if _, err := iptables(log, "-t", c.table, "-X", c.name); err != nil {
			return err
		}
	}
	return nil
}

// ruleFields splits a line of `iptables -S` into arguments for iptables.
// It quotes comments; vxnet's have no spaces, so unquoting each field is
// enough.
func ruleFields(line string) []string {
	f := strings.Fields(line)
	for i := range f {
		f[i] = strings.Trim(f[i], `"`)
	}
	return f
}

// ruleOwner is the vxe- link a rule of `iptables -S` names (by -i, -o or
// its comment) and the endpoint its comment names ("" for none).
func ruleOwner(f []string) (link, endpoint string) {
	for i := 0; i+1 < len(f); i++ {
		v := f[i+1]
		switch {
		case f[i] == "--comment" && strings.HasPrefix(v, egressHostPrefix):
			link, endpoint, _ = strings.Cut(v, "/")
			return link, endpoint
		case (f[i] == "-i" || f[i] == "-o") && strings.HasPrefix(v, egressHostPrefix):
			link = v
		}
	}
	return link, ""
}

// egressLinkVNI parses a vxe-<vni> name.
func egressLinkVNI(name string) (uint32, bool) {
	return parseNsName("vx-" + strings.TrimPrefix(name, egressHostPrefix))
}

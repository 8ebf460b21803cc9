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
	}
}

// hookOf is the chain of Docker's (and the kernel's) jumping to vxnet's.
var hookOf = map[string]string{"filter": "FORWARD", "nat": "POSTROUTING"}

// ensureHostRules adds what is missing of the chains, jumps and vni's
// rules: four iptables commands when nothing is (reconcile runs it every
// round).
func ensureHostRules(log *logrus.Entry, vni uint32, pair egressPair) error {
	have := map[string]bool{}
	for _, table := range []string{"filter", "nat"} {
		out, err := iptables(log, "-t", table, "-S", egressChain)
		if errors.Is(err, errNoIptables) {
			return err
		}
		if err != nil {
			if _, err := iptables(log, "-t", table, "-N", egressChain); err != nil {
				return err
			}
		}
		for _, line := range strings.Split(out, "\n") {
			have[table+" "+strings.TrimSpace(line)] = true
		}
		jump := []string{hookOf[table], "-j", egressChain}
		if _, err := iptables(log, append([]string{"-t", table, "-C"}, jump...)...); err != nil {
			if _, err := iptables(log, append([]string{"-t", table, "-I", jump[0], "1"}, jump[1:]...)...); err != nil {
				return err
			}
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
	return pruneHostRules(log, func(link string) bool { return link == egressHostLink(vni) })
}

// pruneHostRules deletes the rules of vxnet's chains whose vxe- link gone
// says so, then the chains left empty.
func pruneHostRules(log *logrus.Entry, gone func(link string) bool) error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	for _, table := range []string{"filter", "nat"} {
		out, err := iptables(log, "-t", table, "-S", egressChain)
		if err != nil {
			continue // no chain: nothing of vxnet's in this table
		}
		left := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "-A" {
				continue
			}
			link := ruleLink(f)
			if link == "" || !gone(link) {
				left++
				continue
			}
			if _, err := iptables(log, append([]string{"-t", table, "-D"}, f[1:]...)...); err != nil {
				return err
			}
			log.WithFields(logrus.Fields{"table": table, "rule": line}).Info("removed egress rule")
		}
		if left > 0 {
			continue
		}
		if _, err := iptables(log, "-t", table, "-D", hookOf[table], "-j", egressChain); err != nil {
			log.WithError(err).Debug("no jump to remove")
		}
		if _, err := iptables(log, "-t", table, "-X", egressChain); err != nil {
			return err
		}
	}
	return nil
}

// ruleLink is the vxe- link a rule of `iptables -S` names.
func ruleLink(f []string) string {
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-i" || f[i] == "-o") && strings.HasPrefix(f[i+1], egressHostPrefix) {
			return f[i+1]
		}
	}
	return ""
}

// egressLinkVNI parses a vxe-<vni> name.
func egressLinkVNI(name string) (uint32, bool) {
	return parseNsName("vx-" + strings.TrimPrefix(name, egressHostPrefix))
}

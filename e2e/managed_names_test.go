package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

const (
	managedNamesNet    = "mnames"
	managedNamesSubnet = "198.19.9.0/24"
	// managedNamesOn is the line the plugin logs once its resolver serves.
	managedNamesOn = "names: serving container names of other hosts"
)

// TestManagedNames: names across hosts with vxnet installed as the managed
// plugin (its Docker socket is the host's, mount "docker") on two
// standalone hosts and one Consul, each dockerd listing vxnet's resolver
// first as `vxnet dns config` prints. The plugin's log says names are on;
// a container started on host 1 resolves by name and alias from host 2,
// also from a fresh `docker run --rm ... ping -c1 test1` (the issue's
// scenario); its name goes from host 2 when it is removed; then the
// network's removal and the plugins' disable leave nothing in the kernel
// or in Consul.
func TestManagedNames(t *testing.T) {
	c := harness.StartWith(t, harness.Options{Hosts: 2, DockerdArgs: []string{"--dns", namesDNS, "--dns", harness.Gateway}})
	began := time.Now()
	upstreamDNS(t)
	e := &multiHost{c: c, consul: c.StartConsul(t), prefix: "vxe2e-" + randomHex(t, 4), driver: managedName}
	store := "consul://" + e.consul.Addr() + "/" + e.prefix
	mps := make([]*managedPlugin, len(c.Hosts))
	for i, h := range c.Hosts {
		mps[i] = installManaged(t, h, "VXNET_STORE="+store, "VXNET_DNS_UPSTREAM="+harness.Gateway)
		e.plugins = append(e.plugins, mps[i].asPlugin(store))
	}
	c.AddLeakCheck("vxnet managed plugin", func(h *harness.Host) error { return mps[h.Index-1].kernelLeaks() })
	lc := &leakChecker{plugins: e.plugins, driver: managedName, consul: e.consul.Addr(), prefix: e.prefix}
	ok := t.Run("LogSaysOn", func(t *testing.T) {
		for _, m := range mps {
			if line := managedLogLine(t, m, managedNamesOn); line == "" {
				t.Errorf("%s: no line %q of plugin %s in dockerd's log", m.h.Name, managedNamesOn, m.id)
			} else {
				t.Logf("%s: %s", m.h.Name, line)
			}
		}
	})
	if ok {
		ok = t.Run("NameAcrossHosts", func(t *testing.T) { testManagedNameAcrossHosts(t, e) })
	}
	if !ok {
		for _, h := range c.Hosts {
			t.Logf("dockerd on %s (plugin lines included), log tail:\n%s", h.Name, managedTail(h.DockerdLog(), 60))
		}
	}
	t.Run("LeakCheck", func(t *testing.T) {
		for _, h := range c.Hosts {
			if err := removeNetwork(h, managedNamesNet); err != nil {
				t.Error(err)
			}
		}
		if _, err := lc.Wait(20 * time.Second); err != nil {
			t.Error(err)
		}
		for _, m := range mps {
			m.disable(t, false) // its heartbeat key goes with it
		}
		dropResolverLinks(t, c)
		c.LeakCheck(t)
		if keys := swarmKeys(t, e.consul, e.prefix+"/"); len(keys) != 0 {
			t.Errorf("consul keys left under %s/ after the network was removed and every plugin disabled:\n%s", e.prefix, strings.Join(keys, "\n"))
		}
	})
	t.Logf("TestManagedNames, from the hosts up to the end of the leak check: %s", time.Since(began).Round(time.Millisecond))
}

// testManagedNameAcrossHosts: test1 (alias db) on host 1 resolves on host
// 2 by name and alias, and not once it is removed.
func testManagedNameAcrossHosts(t *testing.T, e *multiHost) {
	h1, h2 := e.host(1), e.host(2)
	for _, h := range e.c.Hosts {
		h.MustDocker(t, "network", "create", "-d", managedName, "--ipam-driver", managedName, "--subnet", managedNamesSubnet, managedNamesNet)
	}
	runC(t, h2, "asker", append([]string{"--network", managedNamesNet}, sleeper...)...)
	start := time.Now()
	runC(t, h1, "test1", append([]string{"--network", managedNamesNet, "--network-alias", "db"}, sleeper...)...)
	addr := ip(t, h1, "test1", managedNamesNet)
	waitName(t, h2, "asker", "test1", []string{addr})
	t.Logf("%s: docker exec asker nslookup test1 -> %s (test1 started on %s %s before)", h2.Name, addr, h1.Name, time.Since(start).Round(time.Millisecond))
	waitName(t, h2, "asker", "db", []string{addr})
	out, err := h2.Docker("run", "--rm", "--network", managedNamesNet, harness.Image, "ping", "-c1", "-W2", "test1")
	if err != nil {
		t.Fatalf("%s: docker run --rm --network %s ping -c1 test1: %v\n%s", h2.Name, managedNamesNet, err, out)
	}
	t.Logf("%s: docker run --rm --network %s %s ping -c1 -W2 test1 -> %s", h2.Name, managedNamesNet, harness.Image, firstLine(out, "bytes from"))
	h1.MustDocker(t, "rm", "-f", "test1")
	waitName(t, h2, "asker", "test1", nil)
	h2.MustDocker(t, "rm", "-f", "asker")
}

// managedLogLine is the first line of m's plugin in its dockerd's log that
// holds want, waiting a little for it ("" if none came).
func managedLogLine(t *testing.T, m *managedPlugin, want string) string {
	t.Helper()
	var found string
	_, _ = poll(10*time.Second, 200*time.Millisecond, func() (bool, error) {
		log, err := os.ReadFile(m.h.DockerdLog())
		if err != nil {
			return false, err
		}
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, want) && strings.Contains(l, "plugin="+m.id) {
				found = l
				return true, nil
			}
		}
		return false, fmt.Errorf("no line %q", want)
	})
	return found
}

// firstLine is the first line of out holding s, or out if none does.
func firstLine(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return out
}

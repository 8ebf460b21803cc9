package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

const (
	managedMultiSubnet = "198.19.8.0/24"
	// managedDeadAfter is vxnet's --dead-after default, which the managed
	// plugin keeps (its config has no setting for it).
	managedDeadAfter = 10 * time.Second
	// managedDownFor is how long host 3's plugin stays disabled (an
	// upgrade, say): the others see its heartbeat go at once, and must not
	// purge it for managedDeadAfter after its last beat (2s interval).
	managedDownFor = 3 * time.Second
)

// TestMultiHostManaged is the core of TestMultiHost with vxnet installed
// the way users of standalone hosts install it: the managed plugin
// (`docker plugin create`, `set`, `enable`) on three dockerd hosts, local
// scope, one Consul, and the same `docker network create -d vxnet:latest`
// on every host. Subtests are TestMultiHost's, on the managed driver, plus
// a `docker plugin disable -f` / `enable` on host 3 under traffic from
// host 1; the test ends with the leak check on every host and, with the
// plugins disabled, an empty Consul prefix.
func TestMultiHostManaged(t *testing.T) {
	c := harness.Start(t, 3)
	began := time.Now()
	e := &multiHost{c: c, consul: c.StartConsul(t), prefix: "vxe2e-" + randomHex(t, 4), driver: managedName}
	store := "consul://" + e.consul.Addr() + "/" + e.prefix
	mps := make([]*managedPlugin, len(c.Hosts))
	for i, h := range c.Hosts {
		mps[i] = installManaged(t, h, "VXNET_SCOPE=local", "VXNET_STORE="+store)
		e.plugins = append(e.plugins, mps[i].asPlugin(store))
	}
	c.AddLeakCheck("vxnet managed plugin", func(h *harness.Host) error { return mps[h.Index-1].kernelLeaks() })
	lc := &leakChecker{plugins: e.plugins, driver: managedName, consul: e.consul.Addr(), prefix: e.prefix}
	t.Logf("consul and managed plugins up in %s (store %s)", time.Since(began).Round(time.Millisecond), store)

	e.createProd(t, managedMultiSubnet)
	e.runCases(t, lc, []multiCase{
		{"CrossHostTraffic", testCrossHostTraffic},
		{"PeerRemoval", testPeerRemoval},
		{"DisableEnableUnderTraffic", func(t *testing.T, e *multiHost) { testManagedMultiDisableEnable(t, e, mps[2]) }},
	}, func() {
		for _, h := range c.Hosts {
			t.Logf("dockerd on %s (plugin lines included), log tail:\n%s", h.Name, managedTail(h.DockerdLog(), 60))
		}
	})
	t.Run("LeakCheck", func(t *testing.T) {
		e.removeProd(t)
		for _, m := range mps {
			m.disable(t, false) // its heartbeat key goes with it
		}
		// The managed plugin serves names (it has the Docker socket).
		dropResolverLinks(t, c)
		c.LeakCheck(t)
		if keys := swarmKeys(t, e.consul, e.prefix+"/"); len(keys) != 0 {
			t.Errorf("consul keys left under %s/ after every network was removed and every plugin disabled:\n%s",
				e.prefix, strings.Join(keys, "\n"))
		}
	})
	t.Logf("TestMultiHostManaged total, from the cluster up to the end of the leak check: %s", time.Since(began).Round(time.Millisecond))
}

// asPlugin is the managed plugin as the multi-host helpers see a vxnet:
// its host, store and namespace dir. dockerd runs the process, so proc is
// nil: the subtests and the leak check that use proc are TestMultiHost's
// alone.
func (m *managedPlugin) asPlugin(store string) *plugin {
	return &plugin{h: m.h, store: store, netnsDir: m.netnsDir()}
}

// testManagedMultiDisableEnable: host 1 pings a container on host 3 every
// 200ms while host 3's plugin is disabled with -f and, managedDownFor
// later, enabled again. The datapath stays (the namespaces are mounted
// below the host's /run, the peers' entries stay in the kernel), and the
// other hosts purge host 3 only after managedDeadAfter without its
// heartbeat, which the clean stop removes: a plugin away for less than
// that loses no packet, also in the rest of that window. Afterwards host
// 3's plugin serves new containers again.
func testManagedMultiDisableEnable(t *testing.T, e *multiHost, m *managedPlugin) {
	h1, h3 := e.host(1), e.host(3)
	alive := e.prefix + "/alive/" + h3.IP // vxnet's host ID is its advertise address
	ip3, _ := endpoint(t, h3, pinger(h3), prodNet)
	mustPing(t, h1, pinger(h1), ip3)
	ping := startPing(t, h1, pinger(h1), ip3, "")
	time.Sleep(time.Second)

	disabled := time.Now()
	m.disable(t, true)
	disableTook := time.Since(disabled)
	heartbeatGone := len(swarmKeys(t, e.consul, alive)) == 0
	time.Sleep(managedDownFor - time.Since(disabled))
	enabling := time.Now()
	m.enable(t)
	enableTook, gap := time.Since(enabling), time.Since(disabled)
	beat, err := poll(managedDeadAfter, 50*time.Millisecond, func() (bool, error) {
		keys, err := e.consul.Keys(alive)
		return len(keys) == 1, err
	})
	if err != nil {
		t.Errorf("no heartbeat of %s after enable: %v", h3.Name, err)
	}
	t.Logf("plugin on %s: disable -f took %s (heartbeat key removed: %v), enable %s; down for %s, heartbeat back %s after enable",
		h3.Name, disableTook.Round(time.Millisecond), heartbeatGone, enableTook.Round(time.Millisecond),
		gap.Round(time.Millisecond), (enableTook + beat).Round(time.Millisecond))

	// Keep pinging past the moment the others would purge host 3 had it
	// not come back.
	if rest := managedDeadAfter + 2*time.Second - time.Since(disabled); rest > 0 {
		time.Sleep(rest)
	}
	res, err := ping.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ping %s → %s (%s) across disable -f / enable: %s", h1.Name, h3.Name, ip3, res)
	if gap >= managedDeadAfter {
		t.Errorf("disable -f and enable took %s, not under dead-after (%s)", gap.Round(time.Millisecond), managedDeadAfter)
	} else if res.Sent < 50 || res.Lost > 0 {
		t.Errorf("ping across disable -f / enable: %s; want at least 50 sent and none lost", res)
	}
	for _, h := range []*harness.Host{h1, e.host(2)} {
		log, err := os.ReadFile(h.DockerdLog())
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(log), "does not answer probes"); n > 0 {
			t.Errorf("%s declared a host gone %d times (plugin lines of its dockerd log)", h.Name, n)
		}
	}

	runC(t, h3, "after3", append([]string{"--network", prodNet}, sleeper...)...)
	ipAfter, _ := endpoint(t, h3, "after3", prodNet)
	d := mustPing(t, h1, pinger(h1), ipAfter)
	t.Logf("new container on %s after enable (%s) answers pings from %s after %s", h3.Name, ipAfter, h1.Name, d.Round(time.Millisecond))
}

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// multiHost is the shared state of TestMultiHost and TestMultiHostManaged:
// three dockerd hosts, one Consul, a vxnet on each host on the same Consul
// prefix, the network "prod" created on every host, and one long-running
// container per host on it ("pg1".."pg3", --restart always) that subtests
// ping from and to.
type multiHost struct {
	c      *harness.Cluster
	consul *harness.Consul
	prefix string // Consul key prefix of this run
	// driver is the network and IPAM driver name networks are created
	// with: "vxnet" (socket plugin) or managedName.
	driver string
	// plugins[i] is Hosts[i]'s vxnet; for the managed plugin only h,
	// store and netnsDir are set (dockerd runs it, there is no proc).
	plugins []*plugin
	prodVNI string
}

const (
	prodNet    = "prod"
	prodSubnet = "198.19.2.0/24"
	prodAux    = "198.19.2.253"
)

// TestMultiHost runs the multi-host scenarios: traffic across hosts over
// VXLAN, isolation of two networks spanning the same hosts, parallel
// container starts, peer removal, creates racing on two hosts (overlapping
// subnets, one subnet and VNI), a duplicate MAC, a host failure and
// return, and a Consul restart. Subtests share the cluster (start-up is
// the expensive part) and remove the containers they start; the test ends
// with a leak check on every host and on the Consul prefix. Convergence
// and recovery times are
// logged with t.Logf.
func TestMultiHost(t *testing.T) {
	c := harness.Start(t, 3) // logs its own start-up time
	began := time.Now()
	e, lc := startSocketPlugins(t, c)
	t.Logf("consul and plugins up in %s", time.Since(began).Round(time.Millisecond))

	// the aux address makes every host's create reserve the same address
	e.createProd(t, prodSubnet, "--aux-address", "reserved="+prodAux)

	e.runCases(t, lc, []multiCase{
		{"CrossHostTraffic", testCrossHostTraffic},
		{"Isolation", testMultiHostIsolation},
		{"ParallelRuns", testParallelRuns},
		{"PeerRemoval", testPeerRemoval},
		{"AddressMovesHost", testAddressMovesHost},
		{"CreateRaces", testCreateRaces},
		{"DuplicateMAC", testDuplicateMAC},
		{"Convergence", testConvergence},
		{"HostFailure", testHostFailure},
		{"ConsulRestart", testConsulRestart},
		{"OverlapRace", testOverlapRace},
	}, func() { e.logPluginTails(t) })
	t.Run("LeakCheck", func(t *testing.T) { e.leakCheck(t) })
	t.Logf("TestMultiHost total, from the cluster up to the end of the leak check: %s", time.Since(began).Round(time.Millisecond))
}

// startSocketPlugins starts Consul and a socket-plugin vxnet on every host
// of c (with the extra flags), on a fresh Consul prefix, and registers the
// kernel leak check.
func startSocketPlugins(t *testing.T, c *harness.Cluster, extra ...string) (*multiHost, *leakChecker) {
	e := &multiHost{c: c, consul: c.StartConsul(t), prefix: "vxe2e-" + randomHex(t, 4), driver: "vxnet"}
	storeURI := "consul://" + e.consul.Addr() + "/" + e.prefix
	for _, h := range c.Hosts {
		e.plugins = append(e.plugins, startPlugin(t, h, storeURI, append([]string{"--advertise-addr", h.IP}, extra...)...))
	}
	c.AddLeakCheck("vxnet kernel objects", func(h *harness.Host) error { return e.plugin(h).kernelLeaks() })
	t.Logf("store %s", storeURI)
	return e, &leakChecker{plugins: e.plugins, consul: e.consul.Addr(), prefix: e.prefix}
}

// logPluginTails logs the end of every plugin's log.
func (e *multiHost) logPluginTails(t *testing.T) {
	for _, p := range e.plugins {
		t.Logf("vxnet on %s, log tail:\n%s", p.h.Name, p.proc.LogTail())
	}
}

// multiCase is one scenario on the shared cluster.
type multiCase struct {
	name string
	fn   func(*testing.T, *multiHost)
}

// runCases runs each case and then the leak checker: kernel and store must
// hold exactly what Docker's state needs. onFail shows the logs of a case
// that failed either way.
func (e *multiHost) runCases(t *testing.T, lc *leakChecker, cases []multiCase, onFail func()) {
	for _, tc := range cases {
		start := time.Now()
		ok := t.Run(tc.name, func(t *testing.T) { tc.fn(t, e) })
		t.Logf("%s took %s", tc.name, time.Since(start).Round(time.Millisecond))
		if _, err := lc.Wait(20 * time.Second); err != nil {
			t.Errorf("after %s: %v", tc.name, err)
			ok = false
		}
		if !ok {
			onFail()
		}
	}
}

// stopPlugins stops the plugins, all at once.
func stopPlugins(t *testing.T, plugins []*plugin) {
	var wg sync.WaitGroup
	for _, p := range plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.proc.Stop(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// createProd creates the network prod on every host, checks that it has
// one VNI everywhere, and starts the shared containers on it.
func (e *multiHost) createProd(t *testing.T, subnet string, extra ...string) {
	t.Helper()
	e.createNetEverywhere(t, prodNet, subnet, extra...)
	e.prodVNI = e.newVNIs(t, nil)[0]
	e.eachHost(t, func(h *harness.Host) error {
		_, err := h.Docker(append([]string{"run", "-d", "--name", pinger(h), "--restart", "always", "--network", prodNet}, sleeper...)...)
		return err
	})
}

// leakCheck removes the shared containers and networks, checks every host
// for kernel leftovers, stops the plugins and checks that nothing is left
// under the Consul prefix.
func (e *multiHost) leakCheck(t *testing.T) {
	e.removeProd(t)
	e.c.LeakCheck(t)
	stopPlugins(t, e.plugins)
	if keys := e.plugins[0].storeKeys(t); len(keys) != 0 {
		t.Errorf("consul keys left under %s/ after every network was removed and every plugin stopped:\n%s",
			e.prefix, strings.Join(keys, "\n"))
	}
}

// removeProd removes every container and the network prod on every host.
func (e *multiHost) removeProd(t *testing.T) {
	t.Helper()
	e.eachHost(t, func(h *harness.Host) error {
		out, err := h.Docker("ps", "-aq")
		if err != nil || out == "" {
			return err
		}
		_, err = h.Docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		return err
	})
	e.eachHost(t, func(h *harness.Host) error { return removeNetworkRecount(h, prodNet) })
}

func (e *multiHost) plugin(h *harness.Host) *plugin { return e.plugins[h.Index-1] }

func (e *multiHost) host(n int) *harness.Host { return e.c.Hosts[n-1] }

// pinger is the name of the shared container on host h.
func pinger(h *harness.Host) string { return fmt.Sprintf("pg%d", h.Index) }

// eachHost runs f on every host in parallel and fails the test on errors.
func (e *multiHost) eachHost(t *testing.T, f func(h *harness.Host) error) {
	t.Helper()
	errs := make([]error, len(e.c.Hosts))
	var wg sync.WaitGroup
	for i, h := range e.c.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(h); err != nil {
				errs[i] = fmt.Errorf("%s: %w", h.Name, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// createNetEverywhere runs the same `docker network create` on every host,
// as an operator of standalone hosts does, and removes the network from
// every host when the test ends.
func (e *multiHost) createNetEverywhere(t *testing.T, name, subnet string, extra ...string) {
	t.Helper()
	for _, h := range e.c.Hosts {
		createDriverNet(t, h, e.driver, name, subnet, extra...)
	}
}

// vniNames lists the plugin's namespace files (vx-<vni>) on its host.
func (p *plugin) vniNames(t *testing.T) []string {
	t.Helper()
	names := strings.Fields(p.h.MustExec(t, "ls", p.netnsDir))
	sort.Strings(names)
	return names
}

// newVNIs returns the VNIs whose namespaces exist on every host besides
// known, checking that every host has the same set: one network has one
// VNI cluster-wide.
func (e *multiHost) newVNIs(t *testing.T, known []string) []string {
	t.Helper()
	var first []string
	for _, p := range e.plugins {
		names := p.vniNames(t)
		if first == nil {
			first = names
		} else if strings.Join(names, " ") != strings.Join(first, " ") {
			t.Fatalf("network namespaces differ between hosts: %s has %q, %s has %q", e.plugins[0].h.Name, first, p.h.Name, names)
		}
	}
	old := map[string]bool{}
	for _, v := range known {
		old[v] = true
	}
	var vnis []string
	for _, n := range first {
		v, ok := strings.CutPrefix(n, "vx-")
		if !ok {
			t.Fatalf("unexpected file %q in %s", n, e.plugins[0].netnsDir)
		}
		if !old[v] {
			vnis = append(vnis, v)
		}
	}
	if len(vnis) != 1 {
		t.Fatalf("want exactly one new network namespace on every host (beside VNIs %q), got %q", known, first)
	}
	return vnis
}

// endpoint returns a container's address and MAC on a network.
func endpoint(t *testing.T, h *harness.Host, container, network string) (ip, mac string) {
	t.Helper()
	out := h.MustDocker(t, "inspect", "-f",
		fmt.Sprintf("{{with index .NetworkSettings.Networks %q}}{{.IPAddress}} {{.MacAddress}}{{end}}", network), container)
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("%s on %s: no address and MAC on %s: %q", container, h.Name, network, out)
	}
	return f[0], strings.ToLower(f[1])
}

// pingUntil pings ip from a container once a second (ping -W1) until a
// reply, for up to tries attempts, and returns how long it took.
func pingUntil(h *harness.Host, container, ip string, tries int) (time.Duration, error) {
	start := time.Now()
	script := fmt.Sprintf("i=0; until ping -c1 -W1 %s >/dev/null 2>&1; do i=$((i+1)); if [ $i -ge %d ]; then exit 1; fi; done", ip, tries)
	_, err := h.Docker("exec", container, "sh", "-c", script)
	if err != nil {
		return time.Since(start), fmt.Errorf("%s on %s cannot ping %s (%d tries): %w", container, h.Name, ip, tries, err)
	}
	return time.Since(start), nil
}

func mustPing(t *testing.T, h *harness.Host, container, ip string) time.Duration {
	t.Helper()
	d, err := pingUntil(h, container, ip, 5)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// peerState reports whether vxlan0 (in the namespace of VNI vni on p's
// host) has a static FDB entry mac → remote VTEP (a "self" entry with a
// dst; br0's learned entries on the vxlan0 port are not the plugin's and
// age out on their own), and a neighbour entry ip → mac.
func (p *plugin) peerState(vni, ip, mac string) (inFDB, inNeigh bool, err error) {
	out, err := p.h.Exec("nsenter", "--net="+p.netnsDir+"/vx-"+vni, "sh", "-c",
		"bridge fdb show dev vxlan0 && echo --- && ip neigh show dev vxlan0")
	if err != nil {
		return false, false, err
	}
	fdb, neigh, ok := strings.Cut(out, "---")
	if !ok {
		return false, false, fmt.Errorf("unexpected output: %q", out)
	}
	for _, line := range strings.Split(fdb, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == mac && f[1] == "dst" {
			inFDB = true
		}
	}
	for _, line := range strings.Split(neigh, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ip && strings.Contains(line, "lladdr "+mac) {
			inNeigh = true
		}
	}
	return inFDB, inNeigh, nil
}

// waitPeer polls p's host every interval until the peer's FDB and
// neighbour entries are both present (want true) or both gone (want
// false), for up to timeout, and returns the time it took.
func (p *plugin) waitPeer(vni, ip, mac string, want bool, interval, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		fdb, neigh, err := p.peerState(vni, ip, mac)
		if err == nil && fdb == want && neigh == want {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("%s: peer %s (%s) in FDB %v, in neighbour table %v after %s, want %v (err %v)",
				p.h.Name, ip, mac, fdb, neigh, timeout, want, err)
		}
		time.Sleep(interval)
	}
}

// removeOnCleanup force-removes containers, one command per host, in
// parallel, when the test ends.
func removeOnCleanup(t *testing.T, byHost map[*harness.Host][]string) {
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for h, names := range byHost {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = h.Docker(append([]string{"rm", "-f"}, names...)...)
			}()
		}
		wg.Wait()
	})
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// durations summarises a sample: median and max.
func durations(ds []time.Duration) (median, worst time.Duration) {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0, 0
	}
	if len(s)%2 == 1 {
		median = s[len(s)/2]
	} else {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return median, s[len(s)-1]
}

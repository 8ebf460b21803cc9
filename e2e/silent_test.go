package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/internal/testenv"
)

// silentFor is how long a plugin stays down, and a host cut off from
// Consul, in TestSilentHosts: 120 s, ten times --dead-after and six times
// the heartbeat session's TTL. Outside CI, VXNET_SILENT_FOR may shorten it
// for a quick local run.
func silentFor(t *testing.T) time.Duration {
	if v := os.Getenv("VXNET_SILENT_FOR"); v != "" && !testenv.CI() {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("VXNET_SILENT_FOR=%q: %v", v, err)
		}
		return d
	}
	return 120 * time.Second
}

// TestSilentHosts: running containers are never cut off and no address is
// handed out twice while a host is silent (its plugin down, or cut off
// from Consul); only a host really switched off loses its entries on the
// others, and its addresses are released only when an operator forgets
// it. Three hosts on one Consul; the cases share the cluster and end with
// the leak checker and a cluster-wide duplicate address check; the last
// one leaves host 3 off for good.
func TestSilentHosts(t *testing.T) {
	c := harness.Start(t, 3)
	e := &multiHost{c: c, consul: c.StartConsul(t), prefix: "vxsil-" + randomHex(t, 4), driver: "vxnet"}
	for _, h := range c.Hosts {
		e.plugins = append(e.plugins, startPlugin(t, h, e.storeURI(), "--advertise-addr", h.IP))
	}
	onFail := func() { e.logPluginTails(t) }
	e.createProd(t, prodSubnet)
	lc := &leakChecker{plugins: e.plugins, consul: e.consul.Addr(), prefix: e.prefix}
	e.runCases(t, lc, []multiCase{
		{"PluginDownAndCutOff", testPluginDownAndCutOff},
		{"WrongPrefix", testWrongPrefix},
	}, onFail)
	// Host 3 is switched off for good: from now on the checks follow the
	// two others.
	survivors := &leakChecker{plugins: e.plugins[:2], consul: e.consul.Addr(), prefix: e.prefix}
	e.runCases(t, survivors, []multiCase{{"SwitchedOffAndForgotten", testSwitchedOffAndForgotten}}, onFail)
	t.Run("ForgottenHostReturns", func(t *testing.T) { testForgottenReturns(t, e) })
	t.Run("LeakCheck", func(t *testing.T) {
		for _, h := range c.Hosts {
			out, err := h.Docker("ps", "-aq")
			if err == nil && out != "" {
				_, err = h.Docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
			}
			if err == nil {
				err = removeNetworkRecount(h, prodNet)
			}
			if err != nil {
				t.Error(err)
			}
		}
		// Host 3 keeps the namespace it was forgotten with (see
		// testForgottenReturns); the others keep nothing.
		for _, h := range c.Hosts[:2] {
			if err := e.plugin(h).kernelLeaks(); err != nil {
				t.Error(err)
			}
		}
		stopPlugins(t, e.plugins)
		if keys := e.plugins[0].storeKeys(t); len(keys) != 0 {
			t.Errorf("consul keys left under %s/ after every network was removed and host 3 was forgotten:\n%s",
				e.prefix, strings.Join(keys, "\n"))
		}
	})
}

// testForgottenReturns: host 3, forgotten while off, comes back (underlay,
// plugin, dockerd). The store knows nothing of it: its plugin deletes
// nothing of its live namespace and says why, and the others do not take
// it back as a member.
func testForgottenReturns(t *testing.T, e *multiHost) {
	h3 := e.host(3)
	p3 := e.plugin(h3)
	if err := h3.SetUnderlay(true); err != nil {
		t.Fatal(err)
	}
	// The host's neighbour entries went FAILED while its link was down:
	// wait until it reaches Consul again (vxnet serve exits when its
	// store does not answer at start).
	consulIP, _, _ := net.SplitHostPort(e.consul.Addr())
	if _, err := poll(20*time.Second, 200*time.Millisecond, func() (bool, error) {
		_, err := h3.Exec("busybox", "ping", "-c1", "-W1", consulIP)
		return err == nil, err
	}); err != nil {
		t.Fatalf("host 3 back: Consul at %s unreachable: %v", consulIP, err)
	}
	p3.start(t)
	if err := h3.StartDockerd(); err != nil {
		t.Fatal(err)
	}
	if _, err := poll(20*time.Second, 200*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(p3.proc.LogPath())
		return strings.Contains(string(b), "deleting nothing"), err
	}); err != nil {
		t.Fatalf("forgotten host 3 back: no clear error from its plugin within 20 s (%v):\n%s", err, p3.proc.LogTail())
	}
	if _, err := os.Stat(p3.netnsDir + "/vx-" + e.prodVNI); err != nil {
		t.Errorf("namespace of prod on forgotten host 3 after it came back: %v", err)
	}
	t.Logf("forgotten host 3 back: its plugin keeps its namespace and says: %s", lastLine(p3.proc.LogPath(), "deleting nothing"))
}

// lastLine returns the last line of a file holding substr.
func lastLine(path, substr string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], substr) {
			return lines[i]
		}
	}
	return ""
}

func (e *multiHost) storeURI() string { return "consul://" + e.consul.Addr() + "/" + e.prefix }

// cutFromConsul drops (or lets through again) host h's traffic to Consul.
func (e *multiHost) cutFromConsul(h *harness.Host, cut bool) error {
	ip, port, err := net.SplitHostPort(e.consul.Addr())
	if err != nil {
		return err
	}
	op := "-D"
	if cut {
		op = "-I"
	}
	_, err = h.Exec("iptables", "-w", op, "OUTPUT", "-p", "tcp", "-d", ip, "--dport", port, "-j", "DROP")
	return err
}

// silence cuts host cut off from Consul and kills host down's plugin,
// then waits past --dead-after (10 s), the heartbeat session's TTL
// (Consul keeps it up to twice its 10 s) and a few probe rounds. end
// reconnects the one and restarts the other's plugin; the test's cleanup
// does it too if the test ends first.
func (e *multiHost) silence(t *testing.T, cut, down *harness.Host) (began time.Time, end func()) {
	t.Helper()
	p := e.plugin(down)
	t.Cleanup(func() {
		_ = e.cutFromConsul(cut, false)
		if p.proc.Exited() {
			p.start(t)
		}
	})
	began = time.Now()
	if err := p.proc.Kill9(); err != nil {
		t.Fatal(err)
	}
	if err := e.cutFromConsul(cut, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(25 * time.Second)
	return began, func() {
		if err := e.cutFromConsul(cut, false); err != nil {
			t.Error(err)
		}
		p.start(t)
	}
}

// testPluginDownAndCutOff: host 3's plugin is killed and host 2 is cut off
// from Consul, both for silentFor, while pings run both ways between every
// pair of hosts' containers every 0.2 s and host 1 starts 20 containers.
// Not one ping is lost; no new container gets a silent host's live
// address; host 1 keeps the silent hosts' entries. Afterwards the silent
// hosts reach the new containers.
func testPluginDownAndCutOff(t *testing.T, e *multiHost) {
	hosts := e.c.Hosts
	h1, h2, h3 := hosts[0], hosts[1], hosts[2]
	ips := map[*harness.Host]string{}
	macs := map[*harness.Host]string{}
	for _, h := range hosts {
		ips[h], macs[h] = endpoint(t, h, pinger(h), prodNet)
	}
	var pings []*bgPing
	for _, from := range hosts {
		for _, to := range hosts {
			if from != to {
				pings = append(pings, startPing(t, from, pinger(from), ips[to], fmt.Sprintf("%d%d", from.Index, to.Index)))
			}
		}
	}
	down := silentFor(t)
	began, end := e.silence(t, h2, h3)
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("new%d", i)
	}
	removeOnCleanup(t, map[*harness.Host][]string{h1: names})
	var wg sync.WaitGroup
	runErrs := make([]error, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, runErrs[i] = h1.Docker(append([]string{"run", "-d", "--name", n, "--network", prodNet}, sleeper...)...)
		}()
	}
	wg.Wait()
	seen := map[string]string{ips[h2]: "pg2 on host 2 (cut off)", ips[h3]: "pg3 on host 3 (plugin down)", ips[h1]: "pg1"}
	for i, n := range names {
		if runErrs[i] != nil {
			t.Errorf("docker run %s on host 1: %v", n, runErrs[i])
			continue
		}
		ip, _ := endpoint(t, h1, n, prodNet)
		if other, dup := seen[ip]; dup {
			t.Errorf("duplicate address: %s got %s, the address of %s", n, ip, other)
		}
		seen[ip] = n
	}
	t.Logf("host 1 started 20 containers %s into the silence, all with distinct addresses", time.Since(began).Round(time.Second))
	p1 := e.plugin(h1)
	for _, h := range []*harness.Host{h2, h3} {
		if _, err := p1.waitPeer(e.prodVNI, ips[h], macs[h], true, 50*time.Millisecond, time.Second); err != nil {
			t.Errorf("host 1 dropped the entries of silent %s: %v", h.Name, err)
		}
	}
	if rest := down - time.Since(began); rest > 0 {
		time.Sleep(rest)
	}
	silent := time.Since(began)
	end()
	for _, b := range pings {
		res, err := b.stop()
		if err != nil {
			t.Error(err)
			continue
		}
		t.Logf("ping %s → %s across %s of silence: %s", b.container, b.file[len("/tmp/ping"):], silent.Round(time.Second), res)
		if min := int(silent / (250 * time.Millisecond)); res.Sent < min || res.Lost > 0 {
			t.Errorf("ping from %s (%s): %s; want at least %d sent and none lost", b.container, b.file, res, min)
		}
	}
	// Back: the cut-off host learns the new containers, the restarted
	// plugin keeps its own.
	newIP, _ := endpoint(t, h1, names[0], prodNet)
	for _, h := range []*harness.Host{h2, h3} {
		d, err := pingUntil(h, pinger(h), newIP, 30)
		if err != nil {
			t.Error(err)
			continue
		}
		t.Logf("%s reaches a container started during its silence %s after the silence ended", h.Name, d.Round(time.Millisecond))
	}
	h1.MustDocker(t, append([]string{"rm", "-f"}, names...)...)
}

// testWrongPrefix: host 1's plugin restarts on an empty Consul prefix (a
// typo, a changed host ID, a restored snapshot all look like this): it
// deletes nothing, says why, and its container's traffic goes on; back on
// the right prefix, all is as before.
func testWrongPrefix(t *testing.T, e *multiHost) {
	h1, h2 := e.host(1), e.host(2)
	ip1, _ := endpoint(t, h1, pinger(h1), prodNet)
	ip2, _ := endpoint(t, h2, pinger(h2), prodNet)
	pings := []*bgPing{startPing(t, h1, pinger(h1), ip2, "w12"), startPing(t, h2, pinger(h2), ip1, "w21")}
	p1 := e.plugin(h1)
	right := append([]string(nil), p1.args...)
	restored := false
	t.Cleanup(func() {
		if restored {
			return
		}
		if !p1.proc.Exited() {
			_ = p1.proc.Stop()
		}
		p1.args = right
		p1.start(t)
	})
	if err := p1.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	p1.args = append([]string(nil), right...)
	for i, a := range p1.args {
		if a == "--store" {
			p1.args[i+1] = e.storeURI() + "-empty"
		}
	}
	p1.start(t)
	_, err := poll(20*time.Second, 200*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(p1.proc.LogPath())
		return strings.Contains(string(b), "deleting nothing"), err
	})
	if err != nil {
		t.Fatalf("plugin on an empty prefix: no clear error within 20 s (%v):\n%s", err, p1.proc.LogTail())
	}
	time.Sleep(5 * time.Second) // two more reconcile rounds
	if _, err := os.Stat(p1.netnsDir + "/vx-" + e.prodVNI); err != nil {
		t.Errorf("namespace of prod on host 1 after a reconcile on an empty prefix: %v", err)
	}
	if err := p1.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	p1.args = right
	p1.start(t)
	restored = true
	for _, b := range pings {
		res, err := b.stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ping %s (%s) while host 1's plugin ran on an empty prefix: %s", b.container, b.file, res)
		if res.Sent < 20 || res.Lost > 0 {
			t.Errorf("ping from %s: %s; want at least 20 sent and none lost", b.container, res)
		}
	}
}

// testSwitchedOffAndForgotten: host 3 goes off as a machine does (plugin,
// dockerd and underlay link): the others drop its entries within 15 s,
// its addresses stay leased; `vxnet host forget` refuses a live host,
// then releases host 3, after which its address can be used again.
func testSwitchedOffAndForgotten(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	ip3, mac3 := endpoint(t, h3, pinger(h3), prodNet)
	ip2, _ := endpoint(t, h2, pinger(h2), prodNet)
	mustPing(t, h1, pinger(h1), ip3)
	ping := startPing(t, h1, pinger(h1), ip2, "s12")
	p3 := e.plugin(h3)
	switchOff(t, e, h3, ip3, mac3)
	out, err := h1.Docker("run", "--rm", "--network", prodNet, "--ip", ip3, harness.Image, "true")
	if err == nil || !strings.Contains(out+err.Error(), "already in use") {
		t.Errorf("docker run --ip %s (switched-off host 3's address) on host 1: %v %s; want it refused as in use", ip3, err, out)
	}
	forget := func(host string) (string, error) {
		b, err := exec.Command(vxnetBin, "host", "forget", "--store", e.storeURI(), host).CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}
	if out, err := forget(e.plugin(h2).hostID()); err == nil || !strings.Contains(out, "is alive") {
		t.Errorf("vxnet host forget of live host 2: %v %q; want a refusal saying it is alive", err, out)
	}
	// Host 3's heartbeat key goes with its Consul session, up to twice
	// its 10 s TTL after the kill: until then forget refuses.
	if _, err := poll(30*time.Second, time.Second, func() (bool, error) {
		out, err = forget(p3.hostID())
		return err == nil, fmt.Errorf("%v: %s", err, out)
	}); err != nil {
		t.Fatalf("vxnet host forget %s: %v", p3.hostID(), err)
	}
	t.Logf("vxnet host forget %s: %s", p3.hostID(), out)
	h1.MustDocker(t, "run", "--rm", "--network", prodNet, "--ip", ip3, harness.Image, "true")
	t.Logf("host 3's address %s is usable again after forget", ip3)
	keys, err := harness.ConsulKeys(e.consul.Addr(), e.prefix+"/")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(keys, " "), p3.hostID()) {
		t.Errorf("keys of forgotten host 3 left:\n%s", strings.Join(keys, "\n"))
	}
	res, err := ping.stop()
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost > 0 || res.Sent < 10 {
		t.Errorf("ping host 1 → host 2 while host 3 went off: %s; want at least 10 sent and none lost", res)
	}
}

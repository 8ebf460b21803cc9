package e2e

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

const (
	peerRemovalBound = 2 * time.Second  // container removed → its entries gone on the other hosts
	hostPurgeBound   = 15 * time.Second // host dead → its entries gone on the survivors
	rejoinBound      = 90 * time.Second // host back → its containers reachable again
	consulBackBound  = 60 * time.Second // Consul back → docker run works again
)

// waitPeerOn waits on several hosts at once (see waitPeer) and returns the
// slowest host's time.
func waitPeerOn(t *testing.T, ps []*plugin, vni, ip, mac string, want bool, interval, timeout time.Duration) time.Duration {
	t.Helper()
	var (
		mu      sync.Mutex
		slowest time.Duration
		wg      sync.WaitGroup
	)
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := p.waitPeer(vni, ip, mac, want, interval, timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
			if d > slowest {
				slowest = d
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return slowest
}

// testPeerRemoval: a container's FDB and neighbour entries are on the other
// hosts while it runs and are gone within 2s of `docker rm -f`.
func testPeerRemoval(t *testing.T, e *multiHost) {
	h1 := e.host(1)
	others := e.plugins[1:]
	runC(t, h1, "gone", append([]string{"--network", prodNet}, sleeper...)...)
	ip, mac := endpoint(t, h1, "gone", prodNet)
	appeared := waitPeerOn(t, others, e.prodVNI, ip, mac, true, 20*time.Millisecond, 10*time.Second)
	t.Logf("entries of %s (%s) present on hosts 2 and 3 (%s after docker run returned and inspect)", ip, mac, appeared.Round(time.Millisecond))
	start := time.Now()
	h1.MustDocker(t, "rm", "-f", "gone")
	rm := time.Since(start)
	gone := waitPeerOn(t, others, e.prodVNI, ip, mac, false, 20*time.Millisecond, 10*time.Second)
	t.Logf("FDB and neighbour entries of %s gone from hosts 2 and 3 %s after docker rm -f returned (%s after it was invoked)",
		ip, gone.Round(time.Millisecond), (rm + gone).Round(time.Millisecond))
	if gone > peerRemovalBound {
		t.Errorf("entries took %s to go, want at most %s", gone.Round(time.Millisecond), peerRemovalBound)
	}
}

// testHostFailure: host 3 is cut off as a dead machine is (plugin kill -9,
// dockerd SIGKILL, underlay link down; its containers keep running); the
// survivors drop its peers within 15s. When it comes back, first the
// underlay (its entries are programmed again, the plugin still down), then
// the plugin, then dockerd (which restarts --restart always containers),
// its containers are reachable again from host 1 with no action on vxnet.
func testHostFailure(t *testing.T, e *multiHost) {
	h1, h3 := e.host(1), e.host(3)
	p3 := e.plugin(h3)
	// A fixed address no other subtest uses: this subtest is about the
	// host, testAddressMovesHost about addresses that move.
	runC(t, h3, "k3", append([]string{"--restart", "always", "--network", prodNet, "--ip", "198.19.2.240"}, sleeper...)...)
	ip, mac := endpoint(t, h3, "k3", prodNet)
	pgIP, pgMAC := endpoint(t, h3, pinger(h3), prodNet)
	survivors := e.plugins[:2]
	waitPeerOn(t, survivors, e.prodVNI, ip, mac, true, 50*time.Millisecond, 10*time.Second)
	mustPing(t, h1, pinger(h1), ip)
	ip2, _ := endpoint(t, e.host(2), pinger(e.host(2)), prodNet)

	// Whatever fails below, host 3 is up again for the next subtests.
	t.Cleanup(func() { bringBack(t, e, h3) })
	switchOff(t, e, h3, ip, mac)
	waitPeerOn(t, survivors, e.prodVNI, pgIP, pgMAC, false, 100*time.Millisecond, 5*time.Second)
	// The survivors still talk to each other.
	mustPing(t, h1, pinger(h1), ip2)

	// The underlay comes back first, plugin and dockerd still down: the
	// containers still running there answer again, so their entries are
	// programmed again.
	backAgain(t, e, h1, ip, mac, "host 3's underlay back (plugin and dockerd still down)", func() {
		if err := h3.SetUnderlay(true); err != nil {
			t.Fatal(err)
		}
	})

	// Then the plugin, dockerd still down: its containers run on, and
	// nothing of theirs was removed from the store.
	backAgain(t, e, h1, ip, mac, "host 3's plugin back (dockerd still down)", func() { p3.start(t) })

	// Then dockerd, which (no live-restore) stops the containers it finds
	// and starts those with a restart policy again.
	back := time.Now()
	if err := h3.StartDockerd(); err != nil {
		t.Fatal(err)
	}
	dockerdUp := time.Since(back)
	if _, err := poll(30*time.Second, 200*time.Millisecond, func() (bool, error) {
		out, err := h3.Docker("inspect", "-f", "{{.State.Running}}", "k3")
		return out == "true", err
	}); err != nil {
		t.Fatalf("k3 not running again after dockerd came back (restart policy always): %v\n%s", err, h3.MustDocker(t, "ps", "-a"))
	}
	ip, _ = endpoint(t, h3, "k3", prodNet)
	if _, err := pingUntil(h1, pinger(h1), ip, int(rejoinBound/time.Second)); err != nil {
		t.Fatalf("host 3 back: %v", err)
	}
	t.Logf("host 3's dockerd back: k3 (%s) restarted and answers pings from host 1 %s after dockerd was started (dockerd up after %s)",
		ip, time.Since(back).Round(time.Millisecond), dockerdUp.Round(time.Millisecond))
	pgIP, _ = endpoint(t, h3, pinger(h3), prodNet)
	mustPing(t, h1, pinger(h1), pgIP)
}

// testConsulRestart: Consul stops and starts again while a ping runs
// between hosts 1 and 2; the ping loses at most one packet, also in the
// 12s after Consul is back (longer than the liveness timeout, so a host
// wrongly declared dead would show), and `docker run` works again soon
// after Consul is back.
func testConsulRestart(t *testing.T, e *multiHost) {
	h1, h2 := e.host(1), e.host(2)
	ip2, _ := endpoint(t, h2, pinger(h2), prodNet)
	mustPing(t, h1, pinger(h1), ip2)
	ping := startPing(t, h1, pinger(h1), ip2, "")
	time.Sleep(time.Second)

	stopped := time.Now()
	if err := e.consul.Stop(); err != nil {
		ping.stop()
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // an outage, not just a blip
	e.consul.Start(t)
	back := time.Now()
	t.Logf("consul down for %s", back.Sub(stopped).Round(time.Millisecond))

	var attempts int
	recovered, err := poll(consulBackBound, 500*time.Millisecond, func() (bool, error) {
		attempts++
		_, err := h1.Docker("run", "--rm", "--network", prodNet, harness.Image, "ping", "-c1", "-W2", ip2)
		return err == nil, err
	})
	if err != nil {
		ping.stop()
		t.Fatalf("docker run on %s after consul came back: %v", h1.Name, err)
	}
	t.Logf("docker run with a vxnet endpoint works again %s after consul was back (attempt %d)", recovered.Round(time.Millisecond), attempts)

	if rest := 12*time.Second - time.Since(back); rest > 0 {
		time.Sleep(rest)
	}
	res, err := ping.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ping h1 → h2 across the consul restart: %s", res)
	if res.Sent < 50 || res.Lost > 0 {
		t.Errorf("ping across the consul restart: %s; want at least 50 sent and none lost", res)
	}
}

// testAddressMovesHost: an address (and so its MAC, which Docker derives
// from it) used by a container on host 1 and talked to from host 2 is
// taken by a new container on host 2; the new container answers pings
// from hosts 3 and 1 at once, without sending anything first. This is the
// normal life of an address: IPAM hands out the lowest free one, on any
// host.
func testAddressMovesHost(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	const ip = "198.19.2.250"
	runC(t, h1, "mover1", append([]string{"--network", prodNet, "--ip", ip}, sleeper...)...)
	_, mac := endpoint(t, h1, "mover1", prodNet)
	mustPing(t, h2, pinger(h2), ip)
	h1.MustDocker(t, "rm", "-f", "mover1")
	runC(t, h2, "mover2", append([]string{"--network", prodNet, "--ip", ip}, sleeper...)...)
	// The premise: the address moved with its MAC, so the other hosts
	// hold a neighbour entry for the MAC that is right and an FDB entry
	// pointing at the wrong host.
	if _, mac2 := endpoint(t, h2, "mover2", prodNet); mac2 != mac {
		t.Fatalf("%s has MAC %s on host 2 but had %s on host 1: the case is about an address that keeps its MAC", ip, mac2, mac)
	}
	for _, from := range []*harness.Host{h3, h1} {
		if _, err := pingUntil(from, pinger(from), ip, 3); err != nil {
			brFDB, _ := h2.Exec("nsenter", "--net="+e.plugin(h2).netnsDir+"/vx-"+e.prodVNI, "sh", "-c", "bridge fdb show br br0 | grep -i "+mac)
			vxFDB, _ := from.Exec("nsenter", "--net="+e.plugin(from).netnsDir+"/vx-"+e.prodVNI, "sh", "-c", "bridge fdb show dev vxlan0 | grep -i "+mac)
			t.Errorf("%v\n%s moved from host 1 to host 2 (MAC %s). br0's FDB for that MAC on %s (the new host):\n%s\nvxlan0's FDB on %s (the sender):\n%s",
				err, ip, mac, h2.Name, brFDB, from.Name, vxFDB)
		}
	}
}

// switchOff cuts host h off as a dead machine is (plugin kill -9, dockerd
// SIGKILL, underlay link down; its containers keep running), and checks
// that the other hosts drop its container's entries (ip, mac) within
// hostPurgeBound.
func switchOff(t *testing.T, e *multiHost, h *harness.Host, ip, mac string) {
	t.Helper()
	off := time.Now()
	if err := e.plugin(h).proc.Kill9(); err != nil {
		t.Fatal(err)
	}
	if err := h.KillDockerd(); err != nil {
		t.Fatal(err)
	}
	if err := h.SetUnderlay(false); err != nil {
		t.Fatal(err)
	}
	kills := time.Since(off)
	var others []*plugin
	for _, p := range e.plugins {
		if p.h != h {
			others = append(others, p)
		}
	}
	gone := kills + waitPeerOn(t, others, e.prodVNI, ip, mac, false, 100*time.Millisecond, 2*hostPurgeBound)
	t.Logf("%s switched off: its container's entries (%s) gone from the other hosts %s after (the kills took %s)",
		h.Name, ip, gone.Round(time.Millisecond), kills.Round(time.Millisecond))
	if gone > hostPurgeBound {
		t.Errorf("%s's entries took %s to go, want at most %s", h.Name, gone.Round(time.Millisecond), hostPurgeBound)
	}
}

// bringBack switches host h on again as far as it is off: underlay link,
// plugin, dockerd. The plugin starts once the host reaches Consul again
// (its neighbour entries went FAILED while the link was down, and vxnet
// serve exits when its store does not answer at start).
func bringBack(t *testing.T, e *multiHost, h *harness.Host) {
	t.Helper()
	if err := h.SetUnderlay(true); err != nil {
		t.Error(err)
	}
	if p := e.plugin(h); p.proc.Exited() {
		consulIP, _, _ := net.SplitHostPort(e.consul.Addr())
		if _, err := poll(20*time.Second, 200*time.Millisecond, func() (bool, error) {
			_, err := h.Exec("busybox", "ping", "-c1", "-W1", consulIP)
			return err == nil, err
		}); err != nil {
			t.Errorf("%s back: Consul at %s unreachable: %v", h.Name, consulIP, err)
		}
		p.start(t)
	}
	if h.DockerdPid() == 0 {
		if err := h.StartDockerd(); err != nil {
			t.Error(err)
		}
	}
}

// backAgain runs what (the return of part of host 3, named by what), then
// waits for the entries of its container (ip, mac) on hosts 1 and 2 and
// for the container to answer pings from host h.
func backAgain(t *testing.T, e *multiHost, h *harness.Host, ip, mac, what string, fn func()) {
	t.Helper()
	back := time.Now()
	fn()
	programmed := waitPeerOn(t, e.plugins[:2], e.prodVNI, ip, mac, true, 50*time.Millisecond, 10*time.Second)
	if _, err := pingUntil(h, pinger(h), ip, 10); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: entries of %s on hosts 1 and 2 %s after, it answers pings from %s after %s",
		what, ip, programmed.Round(time.Millisecond), h.Name, time.Since(back).Round(time.Millisecond))
}

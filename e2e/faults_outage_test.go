package e2e

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// testFaultOutage: all three Consul servers stop for Outage while
// containers on three hosts ping each other. The pings go on; every plugin
// callback that needs the store fails with a message naming the problem
// within 10 s, so does every docker command that needs one, and dockerd
// keeps answering; once the servers are back, docker run works on every
// host again with nothing restarted, and after the user removes what the
// outage left half done, vxnet matches Docker again.
func testFaultOutage(t *testing.T, f *faults) {
	const network, subnet = "out", "198.19.14.0/24"
	h1, h2, h3 := f.c.Hosts[0], f.c.Hosts[1], f.c.Hosts[2]
	r := &outageReport{Calls: []callTiming{}, Docker: []callTiming{}}
	f.mu.Lock()
	f.report.Outage = r
	f.mu.Unlock()
	f.netEverywhere(t, network, subnet)
	t.Cleanup(func() {
		if err := f.cc.StartServers(); err != nil {
			t.Error(err)
		}
		f.eachHost(t, func(h *harness.Host) error { return removeAll(h) })
	})
	for _, h := range f.c.Hosts {
		runC(t, h, fmt.Sprintf("o%d", h.Index), append([]string{"--network", network}, sleeper...)...)
	}
	runC(t, h3, "o3x", append([]string{"--network", network}, sleeper...)...)
	// A network of host 2 only, removed during the outage.
	h2.MustDocker(t, "network", "create", "-d", "vxnet", "--ipam-driver", "vxnet", "--subnet", "198.19.15.0/24", "out2")
	ip2 := ip(t, h2, "o2", network)
	ip3 := ip(t, h3, "o3", network)
	mustPing(t, h1, "o1", ip2)
	mustPing(t, h2, "o2", ip3)
	during := []*bgPing{startPing(t, h1, "o1", ip2, "d"), startPing(t, h2, "o2", ip3, "d")}
	netID := h1.MustDocker(t, "network", "inspect", "-f", "{{.Id}}", network)
	time.Sleep(time.Second)

	stopped := time.Now()
	if err := f.cc.StopServers(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	p1 := f.plugin(h1)
	for path, body := range outageCalls(netID) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timed(&mu, &r.Calls, path[1:], func() (int, string, error) { return p1.call(path, body) })
		}()
	}
	docker := func(h *harness.Host, args ...string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timed(&mu, &r.Docker, h.Name+": docker "+fmt.Sprint(args), func() (int, string, error) {
				out, err := h.Docker(args...)
				if err == nil {
					return 0, "ok: " + out, nil
				}
				return 0, out, nil
			})
		}()
	}
	docker(h1, append([]string{"run", "-d", "--name", "o1new", "--network", network}, sleeper...)...)
	docker(h2, "network", "create", "-d", "vxnet", "--ipam-driver", "vxnet", "--subnet", "198.19.16.0/24", "outnew")
	docker(h2, "network", "rm", "out2")
	docker(h3, "rm", "-f", "o3x")
	wg.Wait()
	psStart := time.Now()
	if _, err := h1.Docker("ps"); err != nil {
		t.Errorf("docker ps during the outage: %v", err)
	}
	r.DockerPs = secs(time.Since(psStart))
	if rest := f.cfg.Outage - time.Since(stopped); rest > 0 {
		time.Sleep(rest)
	}
	if err := f.cc.StartServers(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	r.Seconds = secs(back.Sub(stopped))
	after := []*bgPing{startPing(t, h1, "o1", ip2, "a"), startPing(t, h2, "o2", ip3, "a")}
	for _, b := range during {
		res, err := b.stop()
		if err != nil {
			t.Error(err)
		}
		t.Logf("ping from %s during the outage: %s", b.container, res)
		r.PingSent += res.Sent
		r.PingRecv += res.Recv
		r.PingLost += res.Lost
	}

	sort.Slice(r.Calls, func(i, j int) bool { return r.Calls[i].Name < r.Calls[j].Name })
	for _, c := range r.Calls {
		r.MaxCall = max(r.MaxCall, c.Seconds)
		switch {
		case c.Code == 200 || c.Err == "":
			t.Errorf("%s during the outage answered %d %q: want an error", c.Name, c.Code, c.Err)
		case c.Seconds > 10:
			t.Errorf("%s during the outage took %.1fs, want ≤10s", c.Name, c.Seconds)
		case !clearError(c.Err):
			r.NoClearReasons++
			t.Errorf("%s during the outage: no clear reason: %s", c.Name, c.Err)
		}
	}
	for _, c := range r.Docker {
		r.MaxDocker = max(r.MaxDocker, c.Seconds)
		if c.Seconds > 12 {
			t.Errorf("%s during the outage took %.1fs", c.Name, c.Seconds)
		}
	}
	t.Logf("plugin calls during the outage: %+v", r.Calls)
	t.Logf("docker commands during the outage: %+v", r.Docker)

	// Consul is back: docker run works again on every host, nothing
	// restarted. The hosts try at once; each figure is from Consul's
	// return to that host's first docker run that worked.
	recovery := make([]time.Duration, len(f.c.Hosts))
	var rwg sync.WaitGroup
	for i, h := range f.c.Hosts {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			attempts := 0
			_, err := poll(60*time.Second, 500*time.Millisecond, func() (bool, error) {
				attempts++
				out, err := h.Docker("run", "--rm", "--network", network, harness.Image, "ping", "-c1", "-W2", ip2)
				if err != nil {
					t.Logf("%s: docker run %.1fs after consul came back: %v: %.200s", h.Name, time.Since(back).Seconds(), err, out)
				}
				return err == nil, err
			})
			if err != nil {
				t.Errorf("%s: docker run after consul came back: %v", h.Name, err)
			}
			recovery[i] = time.Since(back)
			t.Logf("%s: docker run works again %.1fs after consul came back (attempt %d)", h.Name, recovery[i].Seconds(), attempts)
		}()
	}
	rwg.Wait()
	_, worst := durations(recovery)
	r.Recovery = secs(worst)
	// Longer than --dead-after: a host wrongly declared dead would show.
	if rest := 12*time.Second - time.Since(back); rest > 0 {
		time.Sleep(rest)
	}
	for _, b := range after {
		res, err := b.stop()
		if err != nil {
			t.Error(err)
		}
		t.Logf("ping from %s after the outage: %s", b.container, res)
		r.AfterSent += res.Sent
		r.AfterRecv += res.Recv
		r.AfterLost += res.Lost
	}
	if r.PingLost > 0 || r.AfterLost > 0 || r.PingSent == 0 || r.AfterSent == 0 {
		t.Errorf("pings during the outage: %d sent, %d lost; in the 12s after: %d sent, %d lost; want none lost", r.PingSent, r.PingLost, r.AfterSent, r.AfterLost)
	}
	// What the user does afterwards: remove what failed or is left.
	f.eachHost(t, func(h *harness.Host) error { return removeAll(h) })
	r.LeakSeconds = secs(f.leakCheck(t, 90*time.Second))
	t.Log(r)
}

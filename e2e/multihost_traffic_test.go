package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// testCrossHostTraffic: containers on three hosts ping each other by
// address (names do not resolve across standalone hosts), and 4 MiB of
// random data cross hosts over TCP intact.
func testCrossHostTraffic(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	runC(t, h1, "x1", append([]string{"--network", prodNet}, sleeper...)...)
	runC(t, h2, "x2", append([]string{"--network", prodNet}, sleeper...)...)
	runC(t, h3, "x3", append([]string{"--network", prodNet}, sleeper...)...)
	ip1, _ := endpoint(t, h1, "x1", prodNet)
	ip2, _ := endpoint(t, h2, "x2", prodNet)
	for _, p := range []struct {
		h         *harness.Host
		from, ip  string
		direction string
	}{{h1, "x1", ip2, "h1→h2"}, {h2, "x2", ip1, "h2→h1"}, {h3, "x3", ip1, "h3→h1"}} {
		d := mustPing(t, p.h, p.from, p.ip)
		t.Logf("ping %s (%s) answered after %s", p.direction, p.ip, d.Round(time.Millisecond))
	}
	tcpTransfer(t, h1, h2)
}

// tcpTransfer sends 4 MiB of random data from a container on src to one
// on dst with busybox nc and compares size and MD5. The server's stdin is
// kept open (-i): busybox nc half-closes on stdin EOF and exits as soon as
// the peer has, which must be the client's end of data only.
func tcpTransfer(t *testing.T, src, dst *harness.Host) {
	const size = 4 << 20
	runC(t, dst, "tcp-srv", "-i", "--network", prodNet, harness.Image, "sh", "-c",
		"nc -l -p 5000 > /tmp/f; wc -c < /tmp/f; md5sum < /tmp/f")
	srvIP, _ := endpoint(t, dst, "tcp-srv", prodNet)
	if _, err := poll(5*time.Second, 50*time.Millisecond, func() (bool, error) {
		out, err := dst.Docker("exec", "tcp-srv", "netstat", "-ltn")
		return strings.Contains(out, ":5000 "), err
	}); err != nil {
		t.Fatalf("server not listening: %v", err)
	}
	start := time.Now()
	client := src.MustDocker(t, "run", "--rm", "--network", prodNet, harness.Image, "sh", "-c",
		fmt.Sprintf("dd if=/dev/urandom of=/tmp/src bs=1k count=%d 2>/dev/null && md5sum < /tmp/src && timeout 30 nc -w 5 %s 5000 < /tmp/src", size>>10, srvIP))
	took := time.Since(start)
	if code := dst.MustDocker(t, "wait", "tcp-srv"); code != "0" {
		t.Fatalf("server exited with %s: %s", code, dst.MustDocker(t, "logs", "tcp-srv"))
	}
	got := strings.Fields(dst.MustDocker(t, "logs", "tcp-srv"))
	sent := strings.Fields(client)
	if len(got) < 2 || len(sent) < 1 || got[0] != fmt.Sprint(size) || got[1] != sent[0] {
		t.Fatalf("TCP transfer %s → %s: sent %d bytes md5 %v, received (size md5) %v", src.Name, dst.Name, size, sent, got)
	}
	t.Logf("TCP transfer of %d bytes %s → %s intact (md5 %s), client run took %s", size, src.Name, dst.Name, sent[0], took.Round(time.Millisecond))
}

// testMultiHostIsolation: a second network spanning the same hosts gets
// its own VNI, and its containers cannot resolve (ARP) addresses of the
// first network on another host, while the same ARP works inside each
// network across hosts.
func testMultiHostIsolation(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	e.createNetEverywhere(t, "iso", "198.19.3.0/24")
	isoVNI := e.newVNIs(t, []string{e.prodVNI})[0]
	if isoVNI == e.prodVNI {
		t.Fatalf("both networks have VNI %s", isoVNI)
	}
	t.Logf("VNIs on every host: prod %s, iso %s", e.prodVNI, isoVNI)
	runC(t, h1, "a1", append([]string{"--network", prodNet}, sleeper...)...)
	runC(t, h2, "a2", append([]string{"--network", prodNet}, sleeper...)...)
	runC(t, h2, "b2", append([]string{"--network", "iso"}, sleeper...)...)
	runC(t, h3, "b3", append([]string{"--network", "iso"}, sleeper...)...)
	ipA1, _ := endpoint(t, h1, "a1", prodNet)
	ipB2, _ := endpoint(t, h2, "b2", "iso")
	arping := func(h *harness.Host, from, ip string) (string, error) {
		return h.Docker("exec", from, "arping", "-c2", "-w2", "-I", "eth0", ip)
	}
	// Positive controls, across hosts, in each network.
	for _, c := range []struct {
		h        *harness.Host
		from, ip string
	}{{h2, "a2", ipA1}, {h3, "b3", ipB2}} {
		if _, err := poll(5*time.Second, 0, func() (bool, error) {
			_, err := arping(c.h, c.from, c.ip)
			return err == nil, nil
		}); err != nil {
			out, _ := arping(c.h, c.from, c.ip)
			t.Fatalf("control: %s on %s gets no ARP answer for %s in its own network: %s", c.from, c.h.Name, c.ip, out)
		}
	}
	for _, c := range []struct {
		h        *harness.Host
		from, ip string
	}{{h2, "b2", ipA1}, {h1, "a1", ipB2}} {
		if out, err := arping(c.h, c.from, c.ip); err == nil {
			t.Errorf("%s on %s got an ARP answer for %s of the other network: %s", c.from, c.h.Name, c.ip, out)
		}
	}
}

// testParallelRuns: 30 `docker run -d` at once, spread over the hosts, get
// 30 distinct addresses (also distinct from the shared containers'), and
// every one answers a ping from another host.
func testParallelRuns(t *testing.T, e *multiHost) {
	const n = 30
	byHost := map[*harness.Host][]string{}
	for i := range n {
		h := e.c.Hosts[i%len(e.c.Hosts)]
		byHost[h] = append(byHost[h], fmt.Sprintf("par%02d", i))
	}
	removeOnCleanup(t, byHost)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for h, names := range byHost {
		for _, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.Docker(append([]string{"run", "-d", "--name", name, "--network", prodNet}, sleeper...)...); err != nil {
					errs <- fmt.Errorf("%s: %w", h.Name, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d parallel docker run -d on %d hosts took %s", n, len(e.c.Hosts), time.Since(start).Round(time.Millisecond))

	subnet := netip.MustParsePrefix(prodSubnet)
	owner := map[string]string{}
	ipsByHost := map[*harness.Host][]string{}
	for _, h := range e.c.Hosts {
		names := append([]string{pinger(h)}, byHost[h]...)
		out := h.MustDocker(t, append([]string{"inspect", "-f",
			fmt.Sprintf("{{.Name}} {{(index .NetworkSettings.Networks %q).IPAddress}}", prodNet)}, names...)...)
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				t.Fatalf("inspect on %s: %q", h.Name, line)
			}
			name, ip := strings.TrimPrefix(f[0], "/"), f[1]
			if a, err := netip.ParseAddr(ip); err != nil || !subnet.Contains(a) {
				t.Errorf("%s on %s has address %q, not in %s", name, h.Name, ip, subnet)
			}
			if prev, dup := owner[ip]; dup {
				t.Errorf("%s on %s and %s both have %s", name, h.Name, prev, ip)
			}
			owner[ip] = name + "@" + h.Name
			if name != pinger(h) {
				ipsByHost[h] = append(ipsByHost[h], ip)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Ping every container from the shared container of the next host.
	start = time.Now()
	var pw sync.WaitGroup
	for i, h := range e.c.Hosts {
		from := e.c.Hosts[(i+1)%len(e.c.Hosts)]
		pw.Add(1)
		go func() {
			defer pw.Done()
			bad, err := pingAll(from, pinger(from), ipsByHost[h])
			if err != nil || len(bad) > 0 {
				t.Errorf("from %s to the containers on %s: %v, unreachable %v", from.Name, h.Name, err, bad)
			}
		}()
	}
	pw.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("all %d containers answered a ping from another host (%s)", n, time.Since(start).Round(time.Millisecond))
}

// testConvergence measures, 20 times, how long a new container on host 1
// takes to answer a ping from a running container on host 2, from just
// before `docker run -d` until the first reply. The docker exec that
// pings adds its own start-up, logged as the baseline.
func testConvergence(t *testing.T, e *multiHost) {
	const n = 20
	h1, h2 := e.host(1), e.host(2)
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("conv%02d", i))
	}
	removeOnCleanup(t, map[*harness.Host][]string{h1: names})
	baseStart := time.Now()
	h2.MustDocker(t, "exec", pinger(h2), "true")
	baseline := time.Since(baseStart)
	var all, runs []time.Duration
	for i, name := range names {
		ip := fmt.Sprintf("198.19.2.%d", 200+i)
		start := time.Now()
		h1.MustDocker(t, append([]string{"run", "-d", "--name", name, "--network", prodNet, "--ip", ip}, sleeper...)...)
		runs = append(runs, time.Since(start))
		if _, err := pingUntil(h2, pinger(h2), ip, 10); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		all = append(all, time.Since(start))
	}
	med, worst := durations(all)
	runMed, runWorst := durations(runs)
	t.Logf("convergence h1 container → first ping reply from h2, n=%d: median %s, max %s (docker run -d alone: median %s, max %s; docker exec baseline %s)",
		n, med.Round(time.Millisecond), worst.Round(time.Millisecond), runMed.Round(time.Millisecond), runWorst.Round(time.Millisecond), baseline.Round(time.Millisecond))
}

// poll calls cond every interval until it returns true, for up to
// timeout, and returns how long it took; the error carries cond's last.
func poll(timeout, interval time.Duration, cond func() (bool, error)) (time.Duration, error) {
	start := time.Now()
	for {
		ok, err := cond()
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("not after %s (last error: %v)", timeout, err)
		}
		time.Sleep(interval)
	}
}

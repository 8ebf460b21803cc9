package e2e

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vxnet/vxnet/e2e/harness"
)

// Cross-host container names (package names): every dockerd lists vxnet's
// resolver first and a stand-in for the site's name server after it, as
// `vxnet dns config` prints; the stand-in runs in the test on the underlay
// gateway, so no query leaves the test's addresses.
const (
	namesDNS       = "169.254.53.53"
	upstreamName   = "upstream.test"
	upstreamAddr   = "198.18.0.99"
	namesBound     = 10 * time.Second // a name written or removed → seen on another host
	namesDevNet    = "dev"
	namesDevSubnet = "198.19.5.0/24"
)

// TestNames: a container's name and --network-alias resolve from the other
// hosts of its network, and only from its network; a removed container's
// name goes; a name re-created on another host resolves to the new
// address; a switched-off host's names go once liveness finds it gone;
// names stay through silences longer than --dead-after (a host cut off
// from Consul, a plugin down); a default-bridge container resolves other
// names exactly as from the
// upstream itself, and the lookup latencies with and without vxnet's
// resolver in front are logged.
func TestNames(t *testing.T) {
	c := harness.StartWith(t, harness.Options{Hosts: 3, DockerdArgs: []string{"--dns", namesDNS, "--dns", harness.Gateway}})
	upstreamDNS(t)
	e, lc := startSocketPlugins(t, c, "--dns-addr", namesDNS, "--dns-upstream", harness.Gateway)
	e.createProd(t, prodSubnet)
	e.runCases(t, lc, []multiCase{
		{"NameAndAlias", testNameAndAlias},
		{"OtherNetwork", testNameOtherNetwork},
		{"RemovedAndMoved", testNameRemovedAndMoved},
		{"DefaultBridge", testNameDefaultBridge},
		{"SilentHosts", testNameSilentHosts},
		{"HostGone", testNameHostGone},
	}, func() { e.logPluginTails(t) })
	t.Run("LeakCheck", func(t *testing.T) {
		dropResolverLinks(t, c)
		e.leakCheck(t)
	})
}

// dropResolverLinks removes the names resolver's link from every host, as
// the user does who stops using vxnet: vxnet keeps the link when it stops
// (queries then fail at once instead of leaving by the default route), so
// a test whose plugins served names removes it before its leak check.
func dropResolverLinks(t *testing.T, c *harness.Cluster) {
	t.Helper()
	for _, h := range c.Hosts {
		h.MustExec(t, "ip", "link", "del", "vxnet-dns")
	}
}

// upstreamDNS serves the site's name server stand-in on the underlay
// gateway: upstream.test has an address, every other name is NXDOMAIN.
func upstreamDNS(t *testing.T) {
	t.Helper()
	pc, err := net.ListenPacket("udp", harness.Gateway+":53")
	if err != nil {
		t.Fatalf("upstream DNS stand-in: %v", err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg).SetReply(q)
		switch {
		case len(q.Question) != 1 || !strings.EqualFold(q.Question[0].Name, upstreamName+"."):
			m.SetRcode(q, dns.RcodeNameError)
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(upstreamAddr)}}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
}

// nslookup resolves name in container on h (busybox nslookup, through the
// container's resolv.conf, or server if given) and returns the answer's
// addresses, or the error nslookup printed.
func nslookup(h *harness.Host, container, name string, server ...string) ([]string, error) {
	out, err := h.Docker(append([]string{"exec", container, "nslookup", name}, server...)...)
	if err != nil {
		return nil, fmt.Errorf("nslookup %s in %s on %s: %w", name, container, h.Name, err)
	}
	return answers(out), nil
}

// answers are the addresses after the "Name:" lines of nslookup's output.
func answers(out string) []string {
	var addrs []string
	named := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "Name:":
			named = true
		case named && len(f) >= 2 && f[0] == "Address:":
			addrs = append(addrs, f[1])
		}
	}
	slices.Sort(addrs)
	return addrs
}

// waitName polls nslookup of name in container on h until it resolves to
// want (nil: until it does not resolve), and returns how long it took.
func waitName(t *testing.T, h *harness.Host, container, name string, want []string) time.Duration {
	t.Helper()
	d, err := poll(namesBound+5*time.Second, 200*time.Millisecond, func() (bool, error) {
		got, err := nslookup(h, container, name)
		if want == nil {
			return err != nil, fmt.Errorf("%s still resolves to %v", name, got)
		}
		return err == nil && slices.Equal(got, want), fmt.Errorf("got %v, %v; want %v", got, err, want)
	})
	if err != nil {
		t.Fatalf("name %s in %s on %s: %v", name, container, h.Name, err)
	}
	if d > namesBound {
		t.Errorf("name %s in %s on %s took %s, want at most %s", name, container, h.Name, d.Round(time.Millisecond), namesBound)
	}
	return d
}

// testNameAndAlias: host 1's container resolves on hosts 2 and 3 by name
// and alias, from running containers and from a fresh one (the issue's
// `docker run --rm ... ping -c1 test1`).
func testNameAndAlias(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	start := time.Now()
	h1.MustDocker(t, append([]string{"run", "-d", "--name", "test1", "--network", prodNet, "--network-alias", "db"}, sleeper...)...)
	t.Cleanup(func() { _, _ = h1.Docker("rm", "-f", "test1") })
	ip, _ := endpoint(t, h1, "test1", prodNet)
	waitName(t, h2, pinger(h2), "test1", []string{ip})
	t.Logf("test1 (%s) started on host 1 resolves on host 2 %s after docker run", ip, time.Since(start).Round(time.Millisecond))
	waitName(t, h3, pinger(h3), "db", []string{ip})
	for _, name := range []string{"test1", "db", "TEST1"} {
		if out, err := h2.Docker("run", "--rm", "--network", prodNet, harness.Image, "ping", "-c1", "-W2", name); err != nil {
			t.Errorf("docker run --rm --network %s ping -c1 %s on host 2: %v\n%s", prodNet, name, err, out)
		}
	}
}

// testNameOtherNetwork: a name on a network the querier is not on does
// not resolve, while a container on that network resolves it.
func testNameOtherNetwork(t *testing.T, e *multiHost) {
	h1, h2 := e.host(1), e.host(2)
	for _, h := range []*harness.Host{h1, h2} {
		createDriverNet(t, h, e.driver, namesDevNet, namesDevSubnet)
	}
	h1.MustDocker(t, append([]string{"run", "-d", "--name", "secret1", "--network", namesDevNet}, sleeper...)...)
	h2.MustDocker(t, append([]string{"run", "-d", "--name", "devbox", "--network", namesDevNet}, sleeper...)...)
	t.Cleanup(func() {
		_, _ = h1.Docker("rm", "-f", "secret1")
		_, _ = h2.Docker("rm", "-f", "devbox")
	})
	ip, _ := endpoint(t, h1, "secret1", namesDevNet)
	waitName(t, h2, "devbox", "secret1", []string{ip})
	if got, err := nslookup(h2, pinger(h2), "secret1"); err == nil {
		t.Errorf("%s on host 2 (network %s only) resolved secret1 of network %s: %v", pinger(h2), prodNet, namesDevNet, got)
	}
	if got, err := nslookup(h2, "devbox", pinger(h1)); err == nil {
		t.Errorf("devbox (network %s only) resolved %s of network %s: %v", namesDevNet, pinger(h1), prodNet, got)
	}
}

// testNameRemovedAndMoved: a removed container's name goes from the
// other hosts; the name re-created on another host resolves there.
func testNameRemovedAndMoved(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	h1.MustDocker(t, append([]string{"run", "-d", "--name", "mover", "--network", prodNet}, sleeper...)...)
	ip1, _ := endpoint(t, h1, "mover", prodNet)
	waitName(t, h2, pinger(h2), "mover", []string{ip1})
	removed := time.Now()
	h1.MustDocker(t, "rm", "-f", "mover")
	gone := waitName(t, h2, pinger(h2), "mover", nil)
	t.Logf("mover removed on host 1: its name gone on host 2 %s after docker rm -f returned (%s after it was called)",
		gone.Round(time.Millisecond), time.Since(removed).Round(time.Millisecond))
	h3.MustDocker(t, append([]string{"run", "-d", "--name", "mover", "--network", prodNet}, sleeper...)...)
	t.Cleanup(func() { _, _ = h3.Docker("rm", "-f", "mover") })
	ip3, _ := endpoint(t, h3, "mover", prodNet)
	d := waitName(t, h2, pinger(h2), "mover", []string{ip3})
	t.Logf("mover re-created on host 3 (%s): resolves there from host 2 %s after", ip3, d.Round(time.Millisecond))
	h3.MustDocker(t, "rm", "-f", "mover")
}

// testNameDefaultBridge: a default-bridge container (which asks vxnet's
// address directly) gets the upstream's own answer and rcode, and the
// lookup latency with vxnet in front and without is logged.
func testNameDefaultBridge(t *testing.T, e *multiHost) {
	h2 := e.host(2)
	h2.MustDocker(t, append([]string{"run", "-d", "--name", "plain"}, sleeper...)...)
	t.Cleanup(func() { _, _ = h2.Docker("rm", "-f", "plain") })
	got, err := nslookup(h2, "plain", upstreamName)
	direct, derr := nslookup(h2, "plain", upstreamName, harness.Gateway)
	if err != nil || derr != nil || !slices.Equal(got, direct) || !slices.Equal(got, []string{upstreamAddr}) {
		t.Errorf("%s from a default-bridge container: %v (%v); asking the upstream itself: %v (%v); want both %s", upstreamName, got, err, direct, derr, upstreamAddr)
	}
	for _, server := range [][]string{nil, {harness.Gateway}} {
		out, err := h2.Docker(append([]string{"exec", "plain", "nslookup", "nosuch.test"}, server...)...)
		if err == nil || !strings.Contains(out+err.Error(), "NXDOMAIN") {
			t.Errorf("nosuch.test from a default-bridge container (server %v): %v %s; want NXDOMAIN", server, err, out)
		}
	}
	if out, err := h2.Docker("exec", "plain", "ping", "-c1", "-W1", pinger(h2)); err == nil {
		t.Errorf("a default-bridge container resolved %s of network %s: %s", pinger(h2), prodNet, out)
	}
	const n = 50
	loop := func(c string, server ...string) time.Duration {
		script := fmt.Sprintf("for i in $(seq %d); do nslookup %s %s >/dev/null || exit 1; done", n, upstreamName, strings.Join(server, " "))
		start := time.Now()
		if out, err := h2.Docker("exec", c, "sh", "-c", script); err != nil {
			t.Fatalf("%d lookups in %s: %v %s", n, c, err, out)
		}
		return time.Since(start) / n
	}
	loop("plain") // warm up
	via, without := loop("plain"), loop("plain", harness.Gateway)
	onVxnet := loop(pinger(h2))
	t.Logf("lookup of %s, mean of %d (busybox nslookup, A and AAAA): default-bridge container through vxnet's resolver %s, straight to the upstream %s (difference %s); container on a vxnet network (Docker's resolver, vxnet REFUSED, then the upstream) %s",
		upstreamName, n, via.Round(10*time.Microsecond), without.Round(10*time.Microsecond), (via - without).Round(10*time.Microsecond), onVxnet.Round(10*time.Microsecond))
}

// testNameHostGone: host 3 switched off; its container's name goes from
// hosts 1 and 2 once liveness finds host 3 gone; host 3 then comes back.
func testNameHostGone(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	h3.MustDocker(t, append([]string{"run", "-d", "--name", "far", "--network", prodNet}, sleeper...)...)
	ip, mac := endpoint(t, h3, "far", prodNet)
	waitName(t, h1, pinger(h1), "far", []string{ip})
	t.Cleanup(func() { bringBack(t, e, h3) })
	off := time.Now()
	switchOff(t, e, h3, ip, mac)
	for _, h := range []*harness.Host{h1, h2} {
		waitName(t, h, pinger(h), "far", nil)
	}
	t.Logf("host 3 switched off: its container's name gone on hosts 1 and 2 %s after", time.Since(off).Round(time.Millisecond))
	bringBack(t, e, h3)
	if _, err := h3.Docker("rm", "-f", "far"); err != nil {
		t.Error(err)
	}
}

// testNameSilentHosts: host 2 cut off from Consul and host 3's plugin
// killed, for longer than --dead-after: silent is not gone, so host 1
// still resolves both silent hosts' containers, and host 2 resolves the
// others' from its last listing. Host 3's own containers get no
// cross-host names while its plugin, their resolver, is down (README);
// once it is back they resolve again.
func testNameSilentHosts(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	ips := map[*harness.Host]string{}
	for _, h := range e.c.Hosts {
		ips[h], _ = endpoint(t, h, pinger(h), prodNet)
	}
	for _, from := range []*harness.Host{h1, h2} {
		for _, to := range e.c.Hosts {
			if to != from {
				waitName(t, from, pinger(from), pinger(to), []string{ips[to]})
			}
		}
	}
	began, end := e.silence(t, h2, h3)
	for _, from := range []*harness.Host{h1, h2} {
		for _, to := range e.c.Hosts {
			if to == from {
				continue
			}
			got, err := nslookup(from, pinger(from), pinger(to))
			if err != nil || !slices.Equal(got, []string{ips[to]}) {
				t.Errorf("%s on %s, %s into the silence: %s resolves to %v (%v), want %s", pinger(from), from.Name,
					time.Since(began).Round(time.Second), pinger(to), got, err, ips[to])
			}
		}
	}
	t.Logf("%s into the silence (host 2 cut off from Consul, host 3's plugin down): hosts 1 and 2 resolve every other host's container",
		time.Since(began).Round(time.Second))
	end()
	d := waitName(t, h3, pinger(h3), pinger(h1), []string{ips[h1]})
	t.Logf("host 3's plugin restarted: %s resolves %s again %s later", pinger(h3), pinger(h1), d.Round(time.Millisecond))
}

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// metricsAddr is where every plugin of TestStatus serves /metrics and
// /healthz, inside its host's namespace.
const metricsAddr = "127.0.0.1:9414"

// TestStatus is the operator's view on a live cluster of three hosts on
// one Consul: `vxnet status` (tables and JSON) lists the hosts, the
// network and its endpoints, finds no drift, and then finds an FDB entry
// deleted behind vxnet's back (exit 3) until the plugin repairs it;
// /metrics and /healthz answer and their numbers move with work; and a
// dual-stack network carries IPv6 across hosts with NDP entries
// programmed like ARP ones. Each case ends with the leak checker.
func TestStatus(t *testing.T) {
	c := harness.Start(t, 3)
	e := &multiHost{c: c, consul: c.StartConsul(t), prefix: "vxst-" + randomHex(t, 4), driver: "vxnet"}
	for _, h := range c.Hosts {
		e.plugins = append(e.plugins, startPlugin(t, h, e.storeURI(), "--advertise-addr", h.IP, "--metrics-addr", metricsAddr))
	}
	c.AddLeakCheck("vxnet kernel objects", func(h *harness.Host) error { return e.plugin(h).kernelLeaks() })
	lc := &leakChecker{plugins: e.plugins, consul: e.consul.Addr(), prefix: e.prefix}
	e.createProd(t, prodSubnet)
	e.runCases(t, lc, []multiCase{
		{"StatusAndDrift", testStatusAndDrift},
		{"Metrics", testMetrics},
		{"DualStack", testDualStack},
	}, func() {
		for _, p := range e.plugins {
			t.Logf("vxnet on %s, log tail:\n%s", p.h.Name, p.proc.LogTail())
		}
	})
	t.Run("LeakCheck", func(t *testing.T) { e.leakCheck(t) })
}

// status runs `vxnet status` with args on p's host, with p's settings,
// and returns its output and exit code.
func (p *plugin) status(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := p.h.Exec(append([]string{vxnetBin, "status"}, append(args, "--store", p.store, "--netns-dir", p.netnsDir, "--host-id", p.hostID())...)...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &exit):
		return out, exit.ExitCode()
	}
	t.Fatalf("vxnet status on %s: %v", p.h.Name, err)
	return "", 0
}

// statusJSON is the part of `vxnet status --json` the test reads.
type statusJSON struct {
	Host  string
	Hosts []struct {
		ID, State string
		VTEPs     []string
	}
	Networks []struct {
		VNI       uint32
		Subnets   []string
		Hosts     map[string]string
		Endpoints int
	}
	Endpoints []struct{ Host, MAC string }
	Drift     []string
}

func testStatusAndDrift(t *testing.T, e *multiHost) {
	p1 := e.plugins[0]
	h2 := e.host(2)
	out, code := p1.status(t)
	t.Logf("vxnet status on %s:\n%s", p1.h.Name, out)
	if code != 0 {
		t.Fatalf("vxnet status on a converged cluster: exit %d, want 0:\n%s", code, out)
	}
	for _, h := range e.c.Hosts {
		ip, mac := endpoint(t, h, pinger(h), prodNet)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(h.IP) + `\s+alive\s+\S+\s+` + regexp.QuoteMeta(h.IP) + `\s+1\s+1$`),
			regexp.MustCompile(`(?m)^[0-9a-f]{12}\s+\S+\s+` + regexp.QuoteMeta(h.IP) + `\s+` + regexp.QuoteMeta(ip) + `/24\s+` + mac + `\s+-$`),
		} {
			if !want.MatchString(out) {
				t.Errorf("status lacks a line matching %s", want)
			}
		}
	}
	vniLine := regexp.MustCompile(`(?m)^\S+\s+` + e.prodVNI + `\s+` + regexp.QuoteMeta(prodSubnet) + `\s+\S+,\S+,\S+\s+3$`)
	if !vniLine.MatchString(out) || !strings.Contains(out, "drift on host "+p1.hostID()+": none") {
		t.Errorf("status lacks the network line %s or 'drift ... none'", vniLine)
	}
	js, code := p1.status(t, "network", prodSubnet, "--json")
	var s statusJSON
	if err := json.Unmarshal([]byte(js), &s); err != nil || code != 0 {
		t.Fatalf("status network %s --json: exit %d, %v:\n%s", prodSubnet, code, err, js)
	}
	if len(s.Hosts) != 3 || len(s.Networks) != 1 || fmt.Sprint(s.Networks[0].VNI) != e.prodVNI || s.Networks[0].Endpoints != 3 || len(s.Endpoints) != 3 || len(s.Drift) != 0 {
		t.Errorf("status --json: %+v", s)
	}
	if out, code := p1.status(t, "network", "198.19.99.0/24"); code != 1 || !strings.Contains(out, `no network "198.19.99.0/24"`) {
		t.Errorf("status of an unknown network: exit %d: %s", code, out)
	}

	// Drift: with the plugin stopped (so its 5 s resync cannot repair it
	// first), delete host 2's container's FDB entry on host 1.
	ip2, mac2 := endpoint(t, h2, pinger(h2), prodNet)
	if err := p1.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			p1.start(t)
		}
	}()
	ns := p1.netnsDir + "/vx-" + e.prodVNI
	p1.h.MustExec(t, "nsenter", "--net="+ns, "bridge", "fdb", "del", mac2, "dev", "vxlan0", "dst", h2.IP, "self")
	out, code = p1.status(t)
	t.Logf("vxnet status on %s after deleting %s's FDB entry, plugin stopped:\n%s", p1.h.Name, ip2, out)
	want := fmt.Sprintf("vni %s: fdb %s dst %s on vxlan0 missing (endpoint of host %s)", e.prodVNI, mac2, h2.IP, h2.IP)
	if code != 3 || !strings.Contains(out, want) || !strings.Contains(out, "drift on host "+p1.hostID()+": 1 difference between") {
		t.Fatalf("status after deleting an FDB entry: exit %d, want 3 and exactly %q:\n%s", code, want, out)
	}
	p1.start(t)
	restarted = true
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, code = p1.status(t)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drift not repaired 15 s after the plugin came back: exit %d:\n%s", code, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The repair was one FDB entry written: the restarted plugin's counter.
	if v := p1.metric(t, `vxnet_peer_entry_changes_total{kind="fdb entry",op="set"}`); v != 1 {
		t.Errorf("FDB entries written by the restarted plugin: %v, want 1 (the deleted one)", v)
	}
	mustPing(t, e.host(1), pinger(e.host(1)), ip2)
}

// scrape returns p's /metrics (or another path) from inside its host.
func (p *plugin) scrape(t *testing.T, path string) string {
	t.Helper()
	return p.h.MustExec(t, "curl", "-sS", "--max-time", "5", "http://"+metricsAddr+path)
}

// metric returns the value of one sample of p's /metrics, -1 if absent.
func (p *plugin) metric(t *testing.T, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(p.scrape(t, "/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", sample, v, err)
			}
			return f
		}
	}
	return -1
}

// waitMetric polls p's sample until it is want, for up to timeout.
func (p *plugin) waitMetric(t *testing.T, sample string, want float64, timeout time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := p.metric(t, sample)
		if v == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s: %v after %s, want %v", sample, p.h.Name, v, timeout, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func testMetrics(t *testing.T, e *multiHost) {
	p1, p2 := e.plugins[0], e.plugins[1]
	h1, h2 := e.host(1), e.host(2)
	if out := p1.h.MustExec(t, "curl", "-sS", "-w", " %{http_code}", "http://"+metricsAddr+"/healthz"); out != "ok\n 200" && out != "ok 200" {
		t.Errorf("healthz on %s: %q, want ok 200", h1.Name, out)
	}
	joins := `vxnet_callback_duration_seconds_count{call="NetworkDriver.Join",result="ok"}`
	peers := fmt.Sprintf(`vxnet_peers_programmed{vni="%s"}`, e.prodVNI)
	// The host counts come after the liveness monitor's first probe round
	// (1 s) of a plugin restarted by the case before.
	for _, c := range []struct {
		sample string
		want   float64
	}{
		{"vxnet_networks", 1}, {"vxnet_endpoints", 1}, {peers, 2},
		{`vxnet_hosts{state="alive"}`, 2}, {`vxnet_hosts{state="gone"}`, 0},
	} {
		if err := p1.waitMetric(t, c.sample, c.want, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	joined, stored := p2.metric(t, joins), p2.metric(t, `vxnet_store_call_duration_seconds_count{op="cas",result="ok"}`)
	reconciles := p1.metric(t, `vxnet_reconcile_runs_total{result="ok"}`)
	h2.MustDocker(t, append([]string{"run", "-d", "--name", "mx", "--network", prodNet}, sleeper...)...)
	removeOnCleanup(t, map[*harness.Host][]string{h2: {"mx"}})
	if v := p2.metric(t, joins); v != joined+1 {
		t.Errorf("Join callbacks on %s: %v after a docker run, were %v", h2.Name, v, joined)
	}
	if v := p2.metric(t, `vxnet_store_call_duration_seconds_count{op="cas",result="ok"}`); v <= stored {
		t.Errorf("store CAS calls on %s: %v after a docker run, were %v", h2.Name, v, stored)
	}
	if err := p1.waitMetric(t, peers, 3, 10*time.Second); err != nil {
		t.Error(err)
	}
	if err := p1.waitMetric(t, `vxnet_reconcile_runs_total{result="ok"}`, reconciles+1, 10*time.Second); err != nil {
		t.Error(err)
	}
	var lines []string
	for _, l := range strings.Split(p1.scrape(t, "/metrics"), "\n") {
		if strings.HasPrefix(l, "vxnet_") && !strings.Contains(l, "_bucket{") {
			lines = append(lines, l)
		}
	}
	t.Logf("/metrics on %s (vxnet's own, without buckets):\n%s", h1.Name, strings.Join(lines, "\n"))
	h2.MustDocker(t, "rm", "-f", "mx")
}

func testDualStack(t *testing.T, e *multiHost) {
	const (
		name = "ds"
		v6   = "fd00:1983::/64"
	)
	e.createNetEverywhere(t, name, "198.19.3.0/24", "--ipv6", "--subnet", v6)
	vni := e.newVNIs(t, []string{e.prodVNI})[0]
	h1, h2 := e.host(1), e.host(2)
	addr := map[*harness.Host][2]string{} // IPv6, MAC
	for _, h := range []*harness.Host{h1, h2} {
		c := "ds" + strconv.Itoa(h.Index)
		h.MustDocker(t, append([]string{"run", "-d", "--name", c, "--network", name}, sleeper...)...)
		removeOnCleanup(t, map[*harness.Host][]string{h: {c}})
		out := h.MustDocker(t, "inspect", "-f", `{{with index .NetworkSettings.Networks "ds"}}{{.GlobalIPv6Address}} {{.MacAddress}}{{end}}`, c)
		f := strings.Fields(out)
		if len(f) != 2 || !strings.HasPrefix(f[0], "fd00:1983:") {
			t.Fatalf("%s on %s: no IPv6 address in %s: %q", c, h.Name, v6, out)
		}
		addr[h] = [2]string{f[0], strings.ToLower(f[1])}
	}
	for _, pair := range [][2]*harness.Host{{h1, h2}, {h2, h1}} {
		from, to := pair[0], pair[1]
		script := fmt.Sprintf("i=0; until ping -6 -c1 -W1 %s >/dev/null 2>&1; do i=$((i+1)); if [ $i -ge 10 ]; then exit 1; fi; done", addr[to][0])
		if _, err := from.Docker("exec", "ds"+strconv.Itoa(from.Index), "sh", "-c", script); err != nil {
			t.Errorf("ping -6 from %s to %s (%s): %v", from.Name, to.Name, addr[to][0], err)
		}
		fdb, neigh, err := e.plugin(from).peerState(vni, addr[to][0], addr[to][1])
		if err != nil || !fdb || !neigh {
			t.Errorf("on %s, %s's IPv6 peer %s (%s): in FDB %v, neighbour %v, err %v", from.Name, to.Name, addr[to][0], addr[to][1], fdb, neigh, err)
		}
	}
	out, code := e.plugins[0].status(t, "network", v6)
	t.Logf("vxnet status network %s on %s:\n%s", v6, h1.Name, out)
	if code != 0 || !strings.Contains(out, addr[h2][0]+"/64") || !strings.Contains(out, "drift on host "+e.plugins[0].hostID()+": none") {
		t.Errorf("status of the dual-stack network: exit %d, want 0 listing %s and no drift", code, addr[h2][0])
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/store/keys"
)

// repair is one kind of drift and how vxnet dealt with it.
type repair struct {
	What     string   `json:"what"`
	Restored bool     `json:"restored"`
	Seconds  float64  `json:"restored_after_seconds"`
	Log      []string `json:"log"`
}

type driftReport struct {
	Repairs []repair `json:"repairs"`
	// A deleted namespace takes the bridge ends of its containers' veths
	// along, and with them the containers' interfaces: vxnet rebuilds the
	// namespace, bridge, VXLAN device and peers, but cannot give a running
	// container a new interface (only Docker moves one in). What the
	// container needs then:
	InterfaceLost        bool    `json:"container_lost_its_interface"`
	ReachableNoRestart   bool    `json:"container_reachable_without_restart"`
	ReachableAfterDocker bool    `json:"container_reachable_after_docker_restart"`
	DockerRestartSeconds float64 `json:"docker_restart_to_reachable_seconds"`
	LeakSeconds          float64 `json:"converged_seconds"`
}

func (r *driftReport) String() string {
	var parts []string
	for _, rp := range r.Repairs {
		state := fmt.Sprintf("restored in %.1fs", rp.Seconds)
		if !rp.Restored {
			state = "NOT restored"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%d log lines)", rp.What, state, len(rp.Log)))
	}
	return fmt.Sprintf("6. drift: %s; the deleted namespace's container lost its interface: %v, reachable without restart: %v, after docker restart: %v (%.1fs)",
		strings.Join(parts, "; "), r.InterfaceLost, r.ReachableNoRestart, r.ReachableAfterDocker, r.DockerRestartSeconds)
}

// repairLog returns the plugin's info and warning lines after offset.
func repairLog(p *plugin, offset int64) []string {
	b, err := os.ReadFile(p.proc.LogPath())
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b[offset:]), "\n") {
		if strings.Contains(line, "level=info") || strings.Contains(line, "level=warn") {
			if i := strings.Index(line, "level="); i >= 0 {
				line = line[i:]
			}
			out = append(out, line)
		}
	}
	return out
}

func logSize(p *plugin) int64 {
	fi, err := os.Stat(p.proc.LogPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// testFaultDrift deletes kernel objects behind the plugin's back on host
// 1 — vxlan0, an FDB entry, a neighbour entry, the whole namespace — and
// measures how long vxnet takes to restore them (bound: 10 s) and what it
// logs.
func testFaultDrift(t *testing.T, f *faults) {
	const network, subnet = "dr", "198.19.17.0/24"
	h1, h2 := f.c.Hosts[0], f.c.Hosts[1]
	p1 := f.plugin(h1)
	r := &driftReport{Repairs: []repair{}}
	f.mu.Lock()
	f.report.Drift = r
	f.mu.Unlock()
	f.netEverywhere(t, network, subnet)
	t.Cleanup(func() { f.eachHost(t, func(h *harness.Host) error { return removeAll(h) }) })
	runC(t, h1, "d1", append([]string{"--network", network}, sleeper...)...)
	runC(t, h2, "d2", append([]string{"--network", network}, sleeper...)...)
	ip1, _ := endpoint(t, h1, "d1", network)
	ip2, mac2 := endpoint(t, h2, "d2", network)
	mustPing(t, h2, "d2", ip1)
	key := keys.PoolID(netip.MustParsePrefix(subnet))
	recKey := f.prefix + "/" + keys.Network(key)
	kv, err := harness.ConsulKV(f.lc.consul, recKey)
	if err != nil {
		t.Fatal(err)
	}
	var rec netRecord
	if err := json.Unmarshal(kv[recKey], &rec); err != nil || rec.VNI == 0 {
		t.Fatalf("network record of %s: %v %q", subnet, err, kv)
	}
	vni := fmt.Sprint(rec.VNI)
	ns := p1.netnsDir + "/vx-" + vni
	inNs := func(cmd string) (string, error) { return h1.Exec("nsenter", "--net="+ns, "sh", "-c", cmd) }
	// whole: host 1's namespace of the network holds exactly what Docker's
	// state needs (links, peers, gateway).
	whole := func() bool {
		v, err := f.lc.docker()
		return err == nil && f.lc.checkNamespace(p1, v, rec, key, "vx-"+vni) == nil
	}
	if _, err := poll(10*time.Second, 100*time.Millisecond, func() (bool, error) { return whole(), nil }); err != nil {
		v, _ := f.lc.docker()
		t.Fatalf("before any drift: %v", f.lc.checkNamespace(p1, v, rec, key, "vx-"+vni))
	}

	drift := func(what, cmd string, restored func() bool) {
		t.Helper()
		off := logSize(p1)
		if out, err := h1.Exec("sh", "-c", cmd); err != nil {
			t.Fatalf("%s: %v: %s", what, err, out)
		}
		start := time.Now()
		_, err := poll(10*time.Second, 50*time.Millisecond, func() (bool, error) { return restored(), nil })
		rp := repair{What: what, Restored: err == nil, Seconds: secs(time.Since(start)), Log: repairLog(p1, off)}
		if len(rp.Log) > 5 {
			rp.Log = rp.Log[:5]
		}
		r.Repairs = append(r.Repairs, rp)
		if err != nil {
			t.Errorf("%s: not restored within 10s", what)
		} else if len(rp.Log) == 0 {
			t.Errorf("%s: restored, but nothing logged", what)
		}
		t.Logf("%s: restored %v after %.2fs, log: %q", what, rp.Restored, rp.Seconds, rp.Log)
	}
	drift("vxlan0 deleted", "nsenter --net="+ns+" ip link del vxlan0", whole)
	if _, err := pingUntil(h2, "d2", ip1, 5); err != nil {
		t.Errorf("after vxlan0 came back: %v", err)
	}
	drift("FDB entry deleted", fmt.Sprintf("nsenter --net=%s bridge fdb del %s dev vxlan0 dst %s self", ns, mac2, h2.IP), whole)
	drift("neighbour entry deleted", fmt.Sprintf("nsenter --net=%s ip neigh del %s dev vxlan0", ns, ip2), whole)
	drift("namespace deleted", fmt.Sprintf("umount %s && rm %s", ns, ns), func() bool {
		fdb, neigh, err := p1.peerState(vni, ip2, mac2)
		if err != nil || !fdb || !neigh {
			return false
		}
		out, err := inNs("ip -br addr show br0 && ip -br link show vxlan0")
		return err == nil && strings.Contains(out, "198.19.17.1/24") && strings.Contains(out, "vxlan0")
	})

	// The container of that network on host 1 lost its interface with the
	// namespace: no repair from vxnet brings that back; docker restart does.
	links, _ := h1.Docker("exec", "d1", "ip", "-o", "link")
	r.InterfaceLost = !strings.Contains(links, "eth0")
	_, err = pingUntil(h2, "d2", ip1, 2)
	r.ReachableNoRestart = err == nil
	start := time.Now()
	if _, err := h1.Docker("restart", "-t", "0", "d1"); err != nil {
		t.Errorf("docker restart d1: %v", err)
	}
	ip1, _ = endpoint(t, h1, "d1", network)
	if _, err := pingUntil(h2, "d2", ip1, 10); err != nil {
		t.Errorf("after docker restart of d1: %v", err)
	} else {
		r.ReachableAfterDocker = true
	}
	r.DockerRestartSeconds = secs(time.Since(start))
	t.Log(r)
	f.eachHost(t, func(h *harness.Host) error { return removeAll(h) })
	r.LeakSeconds = secs(f.leakCheck(t, 20*time.Second))
}

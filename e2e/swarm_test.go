package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/store/keys"
)

const (
	swarmNet     = "sw"
	swarmSubnet  = "198.19.4.0/24"
	swarmService = "sws"
	// Docker's own swarm networks (ingress) take their subnets from here,
	// inside the overlay range. Its VXLAN stays on Docker's default port
	// 4789 with VNIs from 4096, beside vxnet's from 0x100000 on the same
	// port.
	swarmAddrPool = "198.19.96.0/19"
)

// TestSwarm runs vxnet as a global-scope managed plugin (network + IPAM) in
// a three-node swarm on one Consul: a --attachable network created on the
// manager, a six-replica service spread over the nodes, every task pinging
// every other across hosts, a scale-down and the service's removal leaving
// nothing on any host or in Consul.
func TestSwarm(t *testing.T) {
	sw := startSwarm(t)
	c, consul, prefix, mgr := sw.c, sw.consul, sw.prefix, sw.mgr
	baseLinks := sw.links(t)

	mgr.MustDocker(t, "network", "create", "-d", managedName, "--ipam-driver", managedName,
		"--subnet", swarmSubnet, "--attachable", swarmNet)
	// the manager's allocator fills in driver and IPAM state after create
	// returns: wait for it
	want := "swarm " + managedName + " " + swarmSubnet + " 198.19.4.1"
	var got string
	if _, err := poll(15*time.Second, 200*time.Millisecond, func() (bool, error) {
		got, _ = mgr.Docker("network", "inspect", "-f", "{{.Scope}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", swarmNet)
		return got == want, nil
	}); err != nil {
		t.Fatalf("swarm network: %q, want %q", got, want)
	}
	mgr.MustDocker(t, "service", "create", "--detach", "--name", swarmService, "--replicas", "6",
		"--network", swarmNet, "--endpoint-mode", "dnsrr", "--no-resolve-image", harness.Image, "sleep", "1d")
	tasks := swarmTasks(t, c, 6)
	for _, h := range c.Hosts {
		if len(tasks[h]) == 0 {
			t.Errorf("no task on %s: %v", h.Name, tasks)
		}
	}
	swarmPingAll(t, tasks)
	for _, h := range c.Hosts {
		log, err := os.ReadFile(h.DockerdLog())
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(log), "registry-1.docker.io"); n > 0 {
			t.Errorf("%s: dockerd tried Docker Hub for the task image (%d mentions in its log)", h.Name, n)
		}
	}
	leases := func() []string { return swarmKeys(t, consul, prefix+"/"+keys.AllLeases) }
	if got := leases(); len(got) != 6 {
		t.Errorf("%d leases for 6 tasks: %v", len(got), got)
	}
	// an attachable container on a worker joins the same network
	w := c.Hosts[2]
	runC(t, w, "att", append([]string{"--network", swarmNet}, sleeper...)...)
	for h, cs := range tasks {
		if len(cs) > 0 && h != w {
			h.MustDocker(t, "exec", cs[0], "ping", "-c1", "-W2", ip(t, w, "att", swarmNet))
			break
		}
	}
	w.MustDocker(t, "rm", "-f", "att")

	mgr.MustDocker(t, "service", "scale", "--detach", swarmService+"=2")
	tasks = swarmTasks(t, c, 2)
	swarmPingAll(t, tasks)
	swarmWait(t, "2 leases and 2 endpoints in Consul", 30*time.Second, func() (bool, string) {
		l, e := leases(), swarmKeys(t, consul, prefix+"/"+keys.AllEndpoints)
		return len(l) == 2 && len(e) == 2, fmt.Sprintf("leases %v, endpoints %v", l, e)
	})

	mgr.MustDocker(t, "service", "rm", swarmService)
	swarmTasks(t, c, 0)
	mgr.MustDocker(t, "network", "rm", swarmNet)
	sw.checkGone(t, swarmNet, baseLinks)
	sw.checkStoreEmpty(t)
}

// swarmSetup is a default three-node swarm (ingress network included)
// whose nodes run vxnet as a global-scope managed plugin on one Consul.
type swarmSetup struct {
	c      *harness.Cluster
	consul *harness.Consul
	prefix string // the plugins' Consul key prefix
	mps    []*managedPlugin
	mgr    *harness.Host
}

func startSwarm(t *testing.T) *swarmSetup {
	t.Helper()
	c := harness.Start(t, 3)
	consul := c.StartConsul(t)
	prefix := "vxe2e-" + randomHex(t, 4)
	store := "consul://" + consul.Addr() + "/" + prefix
	mps := make([]*managedPlugin, len(c.Hosts))
	for i, h := range c.Hosts {
		mps[i] = installManaged(t, h, "VXNET_SCOPE=global", "VXNET_STORE="+store)
	}
	for _, m := range mps {
		if caps := m.h.MustDocker(t, "info", "-f", "{{json .Plugins.Network}}"); !strings.Contains(caps, managedName) {
			t.Fatalf("%s: dockerd does not list the network plugin: %s", m.h.Name, caps)
		}
	}
	mgr := c.Hosts[0]
	mgr.MustDocker(t, "swarm", "init", "--advertise-addr", mgr.IP,
		"--default-addr-pool", swarmAddrPool, "--default-addr-pool-mask-length", "24", "--task-history-limit", "0")
	token := mgr.MustDocker(t, "swarm", "join-token", "-q", "worker")
	for _, h := range c.Hosts[1:] {
		h.MustDocker(t, "swarm", "join", "--token", token, "--advertise-addr", h.IP, mgr.IP+":2377")
	}
	swarmWait(t, "3 ready nodes", 60*time.Second, func() (bool, string) {
		out, _ := mgr.Docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		return strings.Count(out, "Ready") == 3, out
	})
	return &swarmSetup{c: c, consul: consul, prefix: prefix, mps: mps, mgr: mgr}
}

// links waits for every node's ingress sandbox, which each node sets up
// after joining, asynchronously, with a veth on docker_gwbridge, and then
// returns the links vxnet must leave as they are.
func (sw *swarmSetup) links(t *testing.T) map[*harness.Host][]string {
	t.Helper()
	for _, h := range sw.c.Hosts {
		swarmWait(t, "ingress sandbox on "+h.Name, 60*time.Second, func() (bool, string) {
			out, _ := h.Docker("network", "inspect", "-f", "{{json .Containers}}", "docker_gwbridge")
			return strings.Contains(out, "gateway_ingress-sbox"), out
		})
	}
	base := map[*harness.Host][]string{}
	for _, h := range sw.c.Hosts {
		links, err := h.Links()
		if err != nil {
			t.Fatal(err)
		}
		base[h] = links
	}
	return base
}

// checkGone waits until network is gone from every node, and vxnet's
// kernel state of it with it: no namespace, no link left behind.
func (sw *swarmSetup) checkGone(t *testing.T, network string, baseLinks map[*harness.Host][]string) {
	t.Helper()
	for _, h := range sw.c.Hosts {
		swarmWait(t, "network gone from "+h.Name, 30*time.Second, func() (bool, string) {
			out, err := h.Docker("network", "ls", "-q", "--filter", "name=^"+network+"$")
			return err == nil && out == "", out
		})
		// Docker lists the network as gone before its DeleteNetwork
		// to vxnet has returned
		swarmWait(t, "kernel state of the network gone from "+h.Name, 15*time.Second, func() (bool, string) {
			if err := sw.mps[h.Index-1].kernelLeaks(); err != nil {
				return false, err.Error()
			}
			links, err := h.Links()
			if err != nil || strings.Join(links, " ") != strings.Join(baseLinks[h], " ") {
				return false, fmt.Sprintf("links %v, before the network %v (%v)", links, baseLinks[h], err)
			}
			return true, ""
		})
	}
}

// checkStoreEmpty disables every plugin (their heartbeat keys go with
// them) and checks that nothing is left in Consul.
func (sw *swarmSetup) checkStoreEmpty(t *testing.T) {
	t.Helper()
	for _, m := range sw.mps {
		m.disable(t, false)
	}
	if keys := swarmKeys(t, sw.consul, sw.prefix+"/"); len(keys) != 0 {
		t.Errorf("consul keys left under %s/:\n%s", sw.prefix, strings.Join(keys, "\n"))
	}
}

// swarmTasks waits until exactly n containers of the service run, and
// returns them by host.
func swarmTasks(t *testing.T, c *harness.Cluster, n int) map[*harness.Host][]string {
	t.Helper()
	return serviceTasks(t, c, swarmService, n)
}

// serviceTasks waits until exactly n containers of service run, and
// returns them by host.
func serviceTasks(t *testing.T, c *harness.Cluster, service string, n int) map[*harness.Host][]string {
	t.Helper()
	var byHost map[*harness.Host][]string
	swarmWait(t, fmt.Sprintf("%d running tasks", n), 90*time.Second, func() (bool, string) {
		byHost = map[*harness.Host][]string{}
		total, all := 0, 0
		var desc []string
		for _, h := range c.Hosts {
			running, err1 := h.Docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service)
			every, err2 := h.Docker("ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+service)
			if err1 != nil || err2 != nil {
				return false, fmt.Sprint(err1, err2)
			}
			byHost[h] = strings.Fields(running)
			total += len(byHost[h])
			all += len(strings.Fields(every))
			desc = append(desc, fmt.Sprintf("%s: %d running, %d in all", h.Name, len(byHost[h]), len(strings.Fields(every))))
		}
		return total == n && all == n, strings.Join(desc, "; ")
	})
	return byHost
}

// swarmPingAll pings every task's address on the network from every other
// task.
func swarmPingAll(t *testing.T, tasks map[*harness.Host][]string) {
	t.Helper()
	type task struct {
		h      *harness.Host
		id, ip string
	}
	var all []task
	for h, ids := range tasks {
		for _, id := range ids {
			all = append(all, task{h, id, ip(t, h, id, swarmNet)})
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for _, from := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, to := range all {
				if to.id == from.id {
					continue
				}
				if out, err := from.h.Docker("exec", from.id, "ping", "-c1", "-W2", to.ip); err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s %s -> %s %s: %s", from.h.Name, from.ip, to.h.Name, to.ip, out))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		sort.Strings(failed)
		t.Fatalf("%d of %d pings failed:\n%s", len(failed), len(all)*(len(all)-1), strings.Join(failed, "\n"))
	}
	t.Logf("%d tasks, %d pings across hosts ok", len(all), len(all)*(len(all)-1))
}

func swarmKeys(t *testing.T, cs *harness.Consul, prefix string) []string {
	t.Helper()
	keys, err := cs.Keys(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// swarmWait polls cond every 250ms until it holds or timeout passes.
func swarmWait(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s: %s", what, timeout, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

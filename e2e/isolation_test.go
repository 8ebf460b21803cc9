package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// TestL2 checks layer-2 isolation and reach across hosts (issue #11) on
// three hosts, one Consul and the network prod: known unicast to another
// host reaches no other local container, broadcast and multicast reach
// every member host, and VXLAN from a host that never joined reaches no
// container. Each case ends with the leak checker, the test with the full
// leak check.
func TestL2(t *testing.T) {
	c := harness.Start(t, 3)
	e := &multiHost{c: c, consul: c.StartConsul(t), prefix: "vxe2e-" + randomHex(t, 4), driver: "vxnet"}
	storeURI := "consul://" + e.consul.Addr() + "/" + e.prefix
	for _, h := range c.Hosts {
		e.plugins = append(e.plugins, startPlugin(t, h, storeURI, "--advertise-addr", h.IP))
	}
	c.AddLeakCheck("vxnet kernel objects", func(h *harness.Host) error { return e.plugin(h).kernelLeaks() })
	lc := &leakChecker{plugins: e.plugins, consul: e.consul.Addr(), prefix: e.prefix}
	e.createProd(t, prodSubnet)
	e.runCases(t, lc, []multiCase{
		{"Bystander", testBystander},
		{"BroadcastMulticast", testBroadcastMulticast},
		{"VNIHeld", testVNIHeld},
	}, func() {
		for _, p := range e.plugins {
			t.Logf("vxnet on %s, log tail:\n%s", p.h.Name, p.proc.LogTail())
		}
	})
	t.Run("LeakCheck", func(t *testing.T) { e.leakCheck(t) })
}

// rxPackets reads a container's eth0 receive counter.
func rxPackets(t *testing.T, h *harness.Host, container string) int {
	t.Helper()
	out := h.MustDocker(t, "exec", container, "cat", "/sys/class/net/eth0/statistics/rx_packets")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("rx_packets of %s on %s: %q", container, h.Name, out)
	}
	return n
}

// testBystander: a 3-second TCP stream from a container on host 1 to one
// on host 2 must not reach a third, idle container on host 1 (its eth0
// receive counter moves by a handful of frames at most, against tens of
// thousands in the stream). The stream's throughput is logged.
func testBystander(t *testing.T, e *multiHost) {
	h1, h2 := e.host(1), e.host(2)
	runC(t, h2, "by-sink", "--network", prodNet, harness.Image, "vxprobe", "sink", "-port", "5001")
	runC(t, h1, "by-idle", append([]string{"--network", prodNet}, sleeper...)...)
	sinkIP, _ := endpoint(t, h2, "by-sink", prodNet)
	mustPing(t, h1, "by-idle", sinkIP) // every entry in place before counting
	before := rxPackets(t, h1, "by-idle")
	out := h1.MustDocker(t, "run", "--rm", "--network", prodNet, harness.Image,
		"sh", "-c", fmt.Sprintf("vxprobe stream -to %s:5001 -for 3s && cat /sys/class/net/eth0/statistics/tx_packets", sinkIP))
	seen := rxPackets(t, h1, "by-idle") - before
	f := strings.Fields(out)
	if len(f) < 5 {
		t.Fatalf("stream output %q", out)
	}
	sent, _ := strconv.Atoi(f[4])
	t.Logf("bystander: stream h1→h2 %s Mbit/s, %d frames sent; idle container on h1 received %d frames meanwhile", f[3], sent, seen)
	if sent < 1000 {
		t.Fatalf("the stream sent only %d frames: nothing to measure", sent)
	}
	if seen > 50 {
		t.Errorf("idle container on %s received %d frames during a %d-frame stream between two other containers", h1.Name, seen, sent)
	}
}

// testBroadcastMulticast: a UDP broadcast (255.255.255.255) and a datagram
// to the multicast group 239.1.1.1, sent by a container on host 1, reach
// containers on hosts 2 and 3.
func testBroadcastMulticast(t *testing.T, e *multiHost) {
	h1 := e.host(1)
	for _, c := range []struct {
		name, to string
		recv     []string
	}{
		{"broadcast", "255.255.255.255:7000", []string{"-port", "7000"}},
		{"multicast", "239.1.1.1:7001", []string{"-port", "7001", "-group", "239.1.1.1"}},
	} {
		msg := c.name + "-" + randomHex(t, 4)
		var names []string
		for _, h := range []*harness.Host{e.host(2), e.host(3)} {
			name := fmt.Sprintf("rcv-%s-%d", c.name, h.Index)
			args := append([]string{"--network", prodNet, harness.Image, "vxprobe", "recv", "-want", msg, "-wait", "20s"}, c.recv...)
			runC(t, h, name, args...)
			if _, err := poll(10*time.Second, 100*time.Millisecond, func() (bool, error) {
				out, err := h.Docker("logs", name)
				return strings.Contains(out, "ready"), err
			}); err != nil {
				t.Fatalf("%s on %s not listening: %v", name, h.Name, err)
			}
			names = append(names, name)
		}
		h1.MustDocker(t, "run", "--rm", "--network", prodNet, harness.Image, "vxprobe", "send", "-to", c.to, "-msg", msg)
		for i, h := range []*harness.Host{e.host(2), e.host(3)} {
			code := h.MustDocker(t, "wait", names[i])
			logs, _ := h.Docker("logs", names[i])
			if code != "0" {
				t.Errorf("%s from %s did not reach %s on %s: %s", c.name, h1.Name, names[i], h.Name, logs)
			} else {
				t.Logf("%s from %s reached %s: %s", c.name, h1.Name, h.Name, strings.TrimSpace(logs))
			}
		}
	}
}

// testVNIHeld: a VXLAN device of someone else in host 1's namespace holding
// the next automatic VNI on port 4789 (as Docker's swarm ingress holds 4096)
// makes a new network skip to the VNI after it, and an explicit -o
// vxnet.vni of that VNI fails naming the cause.
func testVNIHeld(t *testing.T, e *multiHost) {
	h1 := e.host(1)
	prod, err := strconv.ParseUint(e.prodVNI, 10, 32)
	if err != nil {
		t.Fatalf("prod VNI %q: %v", e.prodVNI, err)
	}
	held := prod + 1
	h1.MustExec(t, "ip", "link", "add", "ingsim", "type", "vxlan", "id", fmt.Sprint(held), "dstport", "4789")
	t.Cleanup(func() { _, _ = h1.Exec("ip", "link", "del", "ingsim") })
	createDriverNet(t, h1, e.driver, "held", "198.19.5.0/24")
	if got := e.plugin(h1).vniNames(t); !slices.Contains(got, fmt.Sprintf("vx-%d", held+1)) || slices.Contains(got, fmt.Sprintf("vx-%d", held)) {
		t.Errorf("namespaces on %s with VNI %d held: %q, want vx-%d", h1.Name, held, got, held+1)
	}
	out, err := h1.Docker("network", "create", "-d", e.driver, "--ipam-driver", e.driver,
		"--subnet", "198.19.6.0/24", "-o", fmt.Sprintf("vxnet.vni=%d", held), "heldx")
	if err == nil {
		_, _ = h1.Docker("network", "rm", "heldx")
		t.Fatalf("explicit VNI %d held by another device: network created", held)
	}
	if want := fmt.Sprintf("VNI %d on UDP port 4789 is held by another VXLAN device", held); !strings.Contains(out, want) {
		t.Errorf("explicit held VNI: %q, want it to say %q", out, want)
	}
	t.Logf("explicit VNI %d held: %s", held, strings.TrimSpace(out))
	if err := removeNetwork(h1, "held"); err != nil {
		t.Error(err)
	}
}

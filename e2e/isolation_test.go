package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
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
	e, lc := startSocketPlugins(t, harness.Start(t, 3))
	e.createProd(t, prodSubnet)
	e.runCases(t, lc, []multiCase{
		{"Bystander", testBystander},
		{"BroadcastMulticast", testBroadcastMulticast},
		{"VNIHeld", testVNIHeld},
		{"Injection", testInjection},
	}, func() { e.logPluginTails(t) })
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

// The stranger: a namespace on the underlay that never joined the cluster.
const (
	strangerNS   = "vxe2e-stranger"
	strangerVeth = "vxe2e-strv"
	strangerIP   = "198.18.0.50"
)

// ipRoot runs ip(8) in the test's own (root) namespace.
func ipRoot(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// startStranger plugs a namespace into the underlay bridge; removed when
// the test ends.
func startStranger(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { _, _ = ipRoot("netns", "del", strangerNS) })
	for _, s := range [][]string{
		{"netns", "add", strangerNS},
		{"link", "add", strangerVeth, "type", "veth", "peer", "name", "eth0", "netns", strangerNS},
		{"link", "set", strangerVeth, "master", "vxe2e-br", "up"},
		{"-n", strangerNS, "addr", "add", strangerIP + "/24", "dev", "eth0"},
		{"-n", strangerNS, "link", "set", "eth0", "up"},
	} {
		if _, err := ipRoot(s...); err != nil {
			t.Fatal(err)
		}
	}
}

// inject makes the stranger's VXLAN device for vni point at host h's VTEP,
// with a neighbour entry for the target so its pings go out as unicast
// frames to the target's MAC, and sends 20 pings. The device goes after.
func inject(t *testing.T, h *harness.Host, vni, src, targetIP, targetMAC string) {
	t.Helper()
	defer func() { _, _ = ipRoot("-n", strangerNS, "link", "del", "vxs") }()
	for _, s := range [][]string{
		{"-n", strangerNS, "link", "add", "vxs", "type", "vxlan", "id", vni, "dstport", "4789", "remote", h.IP, "local", strangerIP},
		{"-n", strangerNS, "addr", "add", src, "dev", "vxs"},
		{"-n", strangerNS, "link", "set", "vxs", "up"},
		{"-n", strangerNS, "neigh", "replace", targetIP, "lladdr", targetMAC, "dev", "vxs", "nud", "permanent"},
	} {
		if _, err := ipRoot(s...); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := exec.Command("ip", "netns", "exec", strangerNS, "busybox", "ping", "-c", "20", "-i", "0.2", "-W", "1", targetIP).CombinedOutput()
	if !strings.Contains(string(out), "20 packets transmitted") {
		t.Fatalf("stranger's pings were not sent: %s", out)
	}
}

var dropCounter = regexp.MustCompile(`counter packets (\d+)`)

// filterDrops reads the drop counter of a VNI's chain in h's VXLAN filter.
func filterDrops(t *testing.T, h *harness.Host, vni string) int {
	t.Helper()
	out, err := h.Exec("nft", "list", "chain", "inet", "vxnet", "vni-"+vni)
	m := dropCounter.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Errorf("no drop counter in the VXLAN filter of VNI %s on %s: %v %s", vni, h.Name, err, out)
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// icmpInEchos reads how many ICMP echo requests a container received
// (/proc/net/snmp): the stranger's pings, told apart from the multicast
// other containers send (IPv6 router solicitations, MLD reports).
func icmpInEchos(t *testing.T, h *harness.Host, container string) int {
	t.Helper()
	out := h.MustDocker(t, "exec", container, "cat", "/proc/net/snmp")
	var head []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		if i := slices.Index(head, "InEchos"); i > 0 && i < len(f) {
			n, err := strconv.Atoi(f[i])
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no Icmp InEchos in /proc/net/snmp of %s on %s: %q", container, h.Name, out)
	return 0
}

// testInjection: a stranger on the underlay that never joined sends
// VXLAN frames with the network's VNI to host 1, addressed to a container
// there, on prod and on an --internal network: none of its pings reaches
// the container (its ICMP echo counter stands still; the interface's frame
// counter is logged, other containers' multicast moves it) and the filter
// counts the drops; a member host still reaches the container.
func testInjection(t *testing.T, e *multiHost) {
	h1, h2 := e.host(1), e.host(2)
	startStranger(t)
	known := []string{e.prodVNI}
	e.createNetEverywhere(t, "intl", "198.19.7.0/24", "--internal")
	intlVNI := e.newVNIs(t, known)[0]
	for _, n := range []struct {
		net, vni, src string
	}{{prodNet, e.prodVNI, "198.19.2.250/24"}, {"intl", intlVNI, "198.19.7.250/24"}} {
		target := "inj-" + n.net
		runC(t, h1, target, append([]string{"--network", n.net}, sleeper...)...)
		runC(t, h2, target+"-m", append([]string{"--network", n.net}, sleeper...)...)
		ip, mac := endpoint(t, h1, target, n.net)
		mustPing(t, h2, target+"-m", ip) // a member reaches it
		dropsBefore := filterDrops(t, h1, n.vni)
		before, echoesBefore := rxPackets(t, h1, target), icmpInEchos(t, h1, target)
		inject(t, h1, n.vni, n.src, ip, mac)
		frames, echoes := rxPackets(t, h1, target)-before, icmpInEchos(t, h1, target)-echoesBefore
		drops := filterDrops(t, h1, n.vni) - dropsBefore
		t.Logf("injection into %s (VNI %s) from a stranger: 20 pings sent, %d echo requests reached the container (all frames received meanwhile: %d), the filter dropped %d packets",
			n.net, n.vni, echoes, frames, drops)
		if echoes > 0 {
			t.Errorf("%d of a stranger's pings over VXLAN reached %s on %s (network %s)", echoes, target, h1.Name, n.net)
		}
		if drops < 20 {
			t.Errorf("the VXLAN filter of VNI %s on %s dropped %d packets of the stranger's 20 pings", n.vni, h1.Name, drops)
		}
		mustPing(t, h2, target+"-m", ip) // members unaffected
	}
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// TestSingleHost runs the single-host scenarios on one dockerd with vxnet
// on the embedded store. Subtests share the host (dockerd start-up is the
// expensive part) and each removes what it created; the leak check runs
// after every subtest and, on the store, at the end.
func TestSingleHost(t *testing.T) {
	c := harness.Start(t, 1)
	h := c.Hosts[0]
	p := startPlugin(t, h, "")
	c.AddLeakCheck("vxnet kernel objects", func(*harness.Host) error { return p.kernelLeaks() })
	lc := &leakChecker{plugins: []*plugin{p}} // bbolt: kernel only while the plugin runs
	c.AddLeakCheck("vxnet state against Docker's", func(*harness.Host) error { _, err := lc.Wait(10 * time.Second); return err })
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *harness.Host, *plugin)
	}{
		{"NetworkLifecycle", testNetworkLifecycle},
		{"Ping", testPing},
		{"StaticIP", testStaticIP},
		{"IPv6", testIPv6},
		{"PublishAndEgress", testPublishAndEgress},
		{"Internal", testInternal},
		{"OwnEgress", testOwnEgress},
		{"ConnectDisconnect", testConnectDisconnect},
		{"Isolation", testIsolation},
		{"BadOptions", testBadOptions},
		{"MalformedRequests", testMalformedRequests},
		{"KillAndRestart", testKillAndRestart},
	} {
		start := time.Now()
		ok := t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, h, p)
		})
		t.Logf("%s took %s", tc.name, time.Since(start).Round(time.Millisecond))
		c.LeakCheck(t)
		if !ok {
			t.Logf("vxnet log tail:\n%s", p.proc.LogTail())
		}
	}
	if keys := p.storeKeys(t); len(keys) != 0 {
		t.Errorf("store keys left behind: %v", keys)
	}
}

func testNetworkLifecycle(t *testing.T, h *harness.Host, p *plugin) {
	createNet(t, h, "life", "198.19.1.0/24", "--gateway", "198.19.1.254", "-o", "vxnet.vni=4242")
	out := h.MustDocker(t, "network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "life")
	if out != "vxnet vxnet 198.19.1.0/24 198.19.1.254" {
		t.Fatalf("inspect: %q", out)
	}
	gw := h.MustExec(t, "nsenter", "--net="+p.netnsDir+"/vx-4242", "ip", "-br", "addr", "show", "br0")
	if !strings.Contains(gw, "198.19.1.254/24") {
		t.Fatalf("bridge in namespace vx-4242 lacks the gateway: %q", gw)
	}
	vx := h.MustExec(t, "nsenter", "--net="+p.netnsDir+"/vx-4242", "ip", "-d", "link", "show", "vxlan0")
	for _, want := range []string{"vxlan id 4242", "dstport 4789", "nolearning", "master br0"} {
		if !strings.Contains(vx, want) {
			t.Errorf("vxlan0 lacks %q:\n%s", want, vx)
		}
	}
	h.MustDocker(t, "network", "rm", "life")
}

func testPing(t *testing.T, h *harness.Host, _ *plugin) {
	createNet(t, h, "net1", "198.19.1.0/24")
	runC(t, h, "pa", append([]string{"--network", "net1"}, sleeper...)...)
	ipA := ip(t, h, "pa", "net1")
	if !strings.HasPrefix(ipA, "198.19.1.") {
		t.Fatalf("pa has address %q", ipA)
	}
	for _, target := range []string{ipA, "pa"} {
		h.MustDocker(t, "run", "--rm", "--network", "net1", harness.Image, "ping", "-c1", "-W2", target)
	}
}

func testStaticIP(t *testing.T, h *harness.Host, _ *plugin) {
	createNet(t, h, "snet", "198.19.1.0/24")
	runC(t, h, "s1", append([]string{"--network", "snet", "--ip", "198.19.1.50"}, sleeper...)...)
	if got := ip(t, h, "s1", "snet"); got != "198.19.1.50" {
		t.Fatalf("s1 has %q, want 198.19.1.50", got)
	}
	out, err := h.Docker("run", "--rm", "--network", "snet", "--ip", "198.19.1.50", harness.Image, "true")
	if err == nil || !strings.Contains(out, "198.19.1.50 is already in use") {
		t.Fatalf("duplicate --ip: err=%v out=%q", err, out)
	}
	h.MustDocker(t, "run", "--rm", "--network", "snet", harness.Image, "ping", "-c1", "-W2", "198.19.1.50")
}

func testIPv6(t *testing.T, h *harness.Host, _ *plugin) {
	createNet(t, h, "v6net", "198.19.5.0/24", "--ipv6", "--subnet", "fd00:198:19:5::/64")
	runC(t, h, "six", append([]string{"--network", "v6net"}, sleeper...)...)
	v6 := h.MustDocker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "v6net").GlobalIPv6Address}}`, "six")
	if !strings.HasPrefix(v6, "fd00:198:19:5::") {
		t.Fatalf("six has IPv6 address %q", v6)
	}
	h.MustDocker(t, "run", "--rm", "--network", "v6net", harness.Image, "ping", "-6", "-c1", "-W2", v6)
}

func testPublishAndEgress(t *testing.T, h *harness.Host, _ *plugin) {
	createNet(t, h, "pub", "198.19.1.0/24")
	runC(t, h, "web", "--network", "pub", "-p", "18080:80", harness.Image,
		"sh", "-c", "echo hello-vxnet > /tmp/index.html && exec httpd -f -p 80 -h /tmp")
	if port := h.MustDocker(t, "port", "web", "80"); !strings.Contains(port, ":18080") {
		t.Fatalf("docker port: %q", port)
	}
	url := fmt.Sprintf("http://%s:18080/index.html", h.IP)
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = strings.TrimSpace(string(b)); body == "hello-vxnet" {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if body != "hello-vxnet" {
		t.Fatalf("GET %s from outside the host: %q", url, body)
	}
	h.MustDocker(t, "run", "--rm", "--network", "pub", harness.Image, "ping", "-c1", "-W2", harness.Gateway)
}

func testInternal(t *testing.T, h *harness.Host, _ *plugin) {
	createNet(t, h, "inet", "198.19.3.0/24", "--internal")
	runC(t, h, "i1", append([]string{"--network", "inet"}, sleeper...)...)
	h.MustDocker(t, "run", "--rm", "--network", "inet", harness.Image, "ping", "-c1", "-W2", "i1")
	if out, err := h.Docker("exec", "i1", "ping", "-c1", "-W2", harness.Gateway); err == nil {
		t.Fatalf("internal network reached the underlay: %s", out)
	}
	if out := h.MustDocker(t, "exec", "i1", "ip", "-o", "link"); strings.Contains(out, "eth1") {
		t.Fatalf("internal network container has a second interface:\n%s", out)
	}
}

func testConnectDisconnect(t *testing.T, h *harness.Host, _ *plugin) {
	createNet(t, h, "cnet", "198.19.1.0/24")
	runC(t, h, "target", append([]string{"--network", "cnet"}, sleeper...)...)
	ipT := ip(t, h, "target", "cnet")
	runC(t, h, "roamer", sleeper...) // on Docker's default bridge
	h.MustDocker(t, "network", "connect", "cnet", "roamer")
	h.MustDocker(t, "exec", "roamer", "ping", "-c1", "-W2", ipT)
	h.MustDocker(t, "network", "disconnect", "cnet", "roamer")
	if out, err := h.Docker("exec", "roamer", "ping", "-c1", "-W2", ipT); err == nil {
		t.Fatalf("still reaches %s after disconnect: %s", ipT, out)
	}
	h.MustDocker(t, "network", "connect", "cnet", "roamer")
	h.MustDocker(t, "exec", "roamer", "ping", "-c1", "-W2", ipT)
}

// testIsolation: two vxnet networks on one host do not share layer 2. ARP
// is used rather than ping so that no packet is routed off the host.
func testIsolation(t *testing.T, h *harness.Host, p *plugin) {
	createNet(t, h, "iso1", "198.19.1.0/24")
	createNet(t, h, "iso2", "198.19.2.0/24")
	runC(t, h, "x1", append([]string{"--network", "iso1"}, sleeper...)...)
	runC(t, h, "y1", append([]string{"--network", "iso1"}, sleeper...)...)
	runC(t, h, "x2", append([]string{"--network", "iso2"}, sleeper...)...)
	ipY1 := ip(t, h, "y1", "iso1")
	// control: arping works inside one network
	h.MustDocker(t, "exec", "x1", "arping", "-c1", "-w2", "-I", "eth0", ipY1)
	if out, err := h.Docker("exec", "x2", "arping", "-c2", "-w2", "-I", "eth0", ipY1); err == nil {
		t.Fatalf("iso2 container got an ARP answer from iso1's %s: %s", ipY1, out)
	}
	ns, _ := h.Exec("ls", p.netnsDir)
	if fields := strings.Fields(ns); len(fields) != 2 || fields[0] == fields[1] {
		t.Fatalf("want two distinct network namespaces (distinct VNIs), got %q", ns)
	}
}

func testBadOptions(t *testing.T, h *harness.Host, _ *plugin) {
	createNet(t, h, "taken", "198.19.1.0/24", "-o", "vxnet.vni=777")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--subnet", "198.19.2.0/24", "-o", "vxnet.bogus=1"}, `unknown option "vxnet.bogus"`},
		{[]string{"--subnet", "198.19.2.0/24", "-o", "vxnet.vni=99999999"}, "out of range 1..16777215"},
		{[]string{"--subnet", "198.19.2.0/24", "-o", "vxnet.vni=777"}, "VNI 777 is already used"},
		{[]string{"--subnet", "198.19.1.128/25"}, "overlaps vxnet pool 198.19.1.0/24"},
		{[]string{"--subnet", "198.19.2.0/24", "-o", "com.docker.network.driver.mtu=9"}, "out of range 576..65535"},
		{[]string{"--subnet", "198.19.2.0/24", "-o", "vxnet.egress=nat"}, `option "vxnet.egress": unknown value "nat"`},
		{nil, "needs an explicit subnet"},
	} {
		args := append([]string{"network", "create", "-d", "vxnet", "--ipam-driver", "vxnet"}, tt.args...)
		out, err := h.Docker(append(args, "bad")...)
		if err == nil {
			_, _ = h.Docker("network", "rm", "bad")
			t.Errorf("%v: accepted", tt.args)
			continue
		}
		if !strings.Contains(out, tt.want) {
			t.Errorf("%v: %q, want it to contain %q", tt.args, out, tt.want)
		}
	}
}

func testMalformedRequests(t *testing.T, h *harness.Host, p *plugin) {
	for _, tt := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"ab`, 400, "malformed request"},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":1}`, 400, "malformed request"},
		{"/IpamDriver.RequestPool", `{"Pool":"` + strings.Repeat("9", 2<<20) + `"}`, 400, "over 1048576 bytes"},
		{"/NetworkDriver.Bogus", `{}`, 404, "unknown plugin endpoint"},
		{"/NetworkDriver.Join", `{"NetworkID":"0123456789ab","EndpointID":"0123456789ab"}`, 500, "is not a vxnet network on this host"},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"0123456789ab","IPv4Data":[{"Pool":"198.19.9.0/24"}],"Options":{"com.docker.network.generic":{"vxnet.vni":"0"}}}`, 400, "out of range"},
		{"/IpamDriver.RequestAddress", `{"PoolID":"198.19.99.0_24"}`, 500, "unknown pool ID"},
		{"/IpamDriver.ReleaseAddress", `{"PoolID":"x","Address":"y"}`, 500, "unknown pool ID"},
	} {
		code, body, err := p.call(tt.path, tt.body)
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if code != tt.code || !regexp.MustCompile(`^\{"Err":".+"\}$`).MatchString(body) || !strings.Contains(body, tt.want) {
			t.Errorf("%s %.60q: got %d %.200s, want %d with Err containing %q", tt.path, tt.body, code, body, tt.code, tt.want)
		}
	}
	if code, _, err := p.call("/Plugin.Activate", ""); err != nil || code != 200 || p.proc.Exited() {
		t.Fatalf("plugin not serving after bad requests: %d %v", code, err)
	}
}

// testKillAndRestart: kill -9 the plugin under traffic; the traffic does
// not notice, and the restarted plugin reconciles and serves.
func testKillAndRestart(t *testing.T, h *harness.Host, p *plugin) {
	createNet(t, h, "knet", "198.19.1.0/24")
	runC(t, h, "k1", append([]string{"--network", "knet"}, sleeper...)...)
	runC(t, h, "k2", append([]string{"--network", "knet"}, sleeper...)...)
	ipK2 := ip(t, h, "k2", "knet")
	pingAcross(t, h, "k1", ipK2, 40, "kill -9 + restart", func() {
		if err := p.proc.Kill9(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		p.start(t)
	})
	// the restarted plugin serves new containers on the old network
	h.MustDocker(t, "run", "--rm", "--network", "knet", harness.Image, "ping", "-c1", "-W2", ipK2)
	// and repairs drift: a VXLAN device deleted behind its back comes back
	nsFile := p.netnsDir + "/" + strings.Fields(h.MustExec(t, "ls", p.netnsDir))[0]
	h.MustExec(t, "nsenter", "--net="+nsFile, "ip", "link", "del", "vxlan0")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.Exec("nsenter", "--net="+nsFile, "ip", "link", "show", "vxlan0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vxlan0 not restored within 10s:\n%s", p.proc.LogTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

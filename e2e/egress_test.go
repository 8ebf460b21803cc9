package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/vxnet/vxnet/e2e/harness"
)

// testOwnEgress: a network with -o vxnet.egress=own. A container reaches
// an address outside the overlay (a server the test runs on the underlay
// bridge, harness.Gateway), seen from the host's underlay address
// (masqueraded), through its default route via the network's gateway and
// with no docker_gwbridge interface; -p is refused naming the option;
// after `docker network rm` the leak check (hostLeaks) finds no vxe- link,
// no route in the link range and no iptables rule of vxnet's.
func testOwnEgress(t *testing.T, h *harness.Host, _ *plugin) {
	ln, err := net.Listen("tcp4", harness.Gateway+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // tells each client the address it came from
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, c.RemoteAddr())
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	createNet(t, h, "own", "198.19.6.0/24", "-o", "vxnet.egress=own")
	runC(t, h, "oe", append([]string{"--network", "own"}, sleeper...)...)
	if out := h.MustDocker(t, "exec", "oe", "ip", "-o", "link"); strings.Contains(out, "eth1") {
		t.Errorf("egress=own container has a second interface (docker_gwbridge):\n%s", out)
	}
	if out := h.MustDocker(t, "exec", "oe", "ip", "route", "show", "default"); !strings.Contains(out, "via 198.19.6.1 dev eth0") {
		t.Errorf("default route %q, want via the network's gateway 198.19.6.1 on eth0", out)
	}
	// busybox-static's wget crashes in these containers; nc it is.
	from := h.MustDocker(t, "exec", "oe", "nc", "-w", "5", harness.Gateway, port)
	if !strings.HasPrefix(from, h.IP+":") {
		t.Errorf("connection to %s from the container arrived from %q, want the host's underlay address %s", ln.Addr(), from, h.IP)
	}
	out, err := h.Docker("run", "--rm", "--network", "own", "-p", "18081:80", harness.Image, "true")
	if err == nil || !strings.Contains(out, "vxnet.egress=own, which does not publish ports") {
		t.Errorf("docker run -p on an egress=own network: err=%v out=%q", err, out)
	}
	// --internal wins: no egress at all, as without the option.
	createNet(t, h, "owni", "198.19.7.0/24", "--internal", "-o", "vxnet.egress=own")
	if out, err := h.Docker("run", "--rm", "--network", "owni", harness.Image, "nc", "-w", "2", harness.Gateway, port); err == nil && strings.Contains(out, ":") {
		t.Errorf("internal egress=own network reached %s: %s", ln.Addr(), out)
	}
}

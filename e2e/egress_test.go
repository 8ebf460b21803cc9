package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// testOwnEgress: a network with -o vxnet.egress=own. A container reaches
// an address outside the overlay (a server the test runs on the underlay
// bridge, harness.Gateway), seen from the host's underlay address
// (masqueraded), through its default route via the network's gateway and
// with no docker_gwbridge interface; its published ports (ownEgressPorts);
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
	ownEgressPorts(t, h)
	// --internal wins: no egress at all, as without the option.
	createNet(t, h, "owni", "198.19.7.0/24", "--internal", "-o", "vxnet.egress=own")
	if out, err := h.Docker("run", "--rm", "--network", "owni", harness.Image, "nc", "-w", "2", harness.Gateway, port); err == nil && strings.Contains(out, ":") {
		t.Errorf("internal egress=own network reached %s: %s", ln.Addr(), out)
	}
}

// ownEgressPorts: `-p 18081:80` on an egress=own network, to a container
// whose nc answers each connection with its netstat (so the client's
// address as the container sees it). It is reached from outside the host
// (the test, on the underlay bridge), the container seeing the test's
// address, and from the host at 127.0.0.1 and at its underlay address; a
// second container asking for the port is refused, and so is -P (Docker
// would not show the port vxnet chose); after `docker rm -f` no rule of
// the port is left and the port can be published again.
func ownEgressPorts(t *testing.T, h *harness.Host) {
	server := []string{"--network", "own", "-p", "18081:80", harness.Image, "nc", "-ll", "-p", "80", "-e", "netstat", "-tn"}
	runC(t, h, "oep", server...)
	ask := func(from, addr string) string {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var out string
			var err error
			if from == "outside" {
				out, err = dialRead(addr)
			} else {
				out, err = h.Exec("busybox", "nc", "-w", "3", strings.Split(addr, ":")[0], strings.Split(addr, ":")[1])
			}
			if err == nil && strings.Contains(out, ":80 ") || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("%s to %s: %v %s", from, addr, err, out)
				}
				return out
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if out := ask("outside", h.IP+":18081"); !strings.Contains(out, harness.Gateway+":") {
		t.Errorf("connection from %s to %s:18081: the container saw\n%s\nwant the client's address %s", harness.Gateway, h.IP, out, harness.Gateway)
	}
	for _, addr := range []string{"127.0.0.1:18081", h.IP + ":18081"} {
		if out := ask("host", addr); !strings.Contains(out, "ESTABLISHED") && !strings.Contains(out, "CLOSE_WAIT") {
			t.Errorf("connection from the host to %s: the container answered %q", addr, out)
		}
	}
	t.Logf("docker port oep: %q", h.MustDocker(t, "port", "oep"))
	if out, err := h.Docker("run", "--rm", "--network", "own", "-p", "18081:80", harness.Image, "true"); err == nil || !strings.Contains(out, "host port in use") {
		t.Errorf("docker run -p 18081 again: err=%v out=%q, want host port in use", err, out)
	}
	if out, err := h.Docker("run", "--rm", "--network", "own", "-P", "--expose", "80", harness.Image, "true"); err == nil || !strings.Contains(out, "-P and -p without a host port are refused") {
		t.Errorf("docker run -P: err=%v out=%q", err, out)
	}
	h.MustDocker(t, "rm", "-f", "oep")
	for _, table := range []string{"filter", "nat"} {
		if out := h.MustExec(t, "iptables-save", "-t", table); strings.Contains(out, "18081") {
			t.Errorf("iptables %s after docker rm -f:\n%s", table, out)
		}
	}
	runC(t, h, "oep2", server...)
	if out := ask("outside", h.IP+":18081"); !strings.Contains(out, harness.Gateway+":") {
		t.Errorf("port published again: the container saw\n%s", out)
	}
	h.MustDocker(t, "rm", "-f", "oep2")
}

// dialRead connects to addr and returns all it sends.
func dialRead(addr string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

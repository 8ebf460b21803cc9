package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vxnet/vxnet/internal/testenv"
)

func TestReserve(t *testing.T) {
	taken := map[uint16]bool{8000: true, 8001: true}
	var tried []uint16
	bind := func(b PortBinding) (io.Closer, error) {
		tried = append(tried, b.HostPort)
		if taken[b.HostPort] {
			return nil, errors.New("address already in use")
		}
		return io.NopCloser(nil), nil
	}
	for _, tc := range []struct {
		b     PortBinding
		want  uint16
		tried string
	}{
		{PortBinding{Proto: "tcp", HostPort: 8002, Port: 80}, 8002, "[8002]"},
		{PortBinding{Proto: "tcp", HostPort: 8002, HostPortEnd: 8002, Port: 80}, 8002, "[8002]"},
		{PortBinding{Proto: "tcp", HostPort: 8000, HostPortEnd: 8005, Port: 80}, 8002, "[8000 8001 8002]"},
		{PortBinding{Proto: "tcp", HostPort: 8000, HostPortEnd: 8001, Port: 80}, 0, "[8000 8001]"},
		{PortBinding{Proto: "tcp", HostPort: 65535, HostPortEnd: 65535, Port: 80}, 65535, "[65535]"},
	} {
		tried = nil
		got, c, err := reserve(tc.b, bind)
		if fmt.Sprint(tried) != tc.tried {
			t.Errorf("reserve(%v) tried %v, want %s", tc.b, tried, tc.tried)
		}
		if tc.want == 0 {
			if !errors.Is(err, ErrPortInUse) || c != nil {
				t.Errorf("reserve(%v) = %v, %v; want ErrPortInUse", tc.b, got, err)
			}
			continue
		}
		if err != nil || got.HostPort != tc.want || got.HostPortEnd != 0 {
			t.Errorf("reserve(%v) = %v, %v; want host port %d", tc.b, got, err, tc.want)
		}
	}
}

// TestPublish: a network with its own egress on host A (FORWARD policy
// DROP) publishes a container's tcp and udp ports. Host B reaches them at
// A's underlay address, the container seeing B's address; A reaches them
// at 127.0.0.1 and at its own address. A port taken is ErrPortInUse (and
// a range moves on to the next), Unpublish frees the port and leaves no
// rule, PrunePublished removes those of an endpoint gone, and after
// DeleteNetwork nothing is left.
func TestPublish(t *testing.T) {
	const vni = 4503
	if _, err := exec.LookPath("iptables"); err != nil {
		testenv.Missing(t, "egress tests need iptables")
	}
	_, hA, hB := twoHosts(t)
	a := side{host: hA, vtep: "198.18.0.1", ip4: "198.19.1.2/24", ip6: "2001:db8:19:1::2/64", ep: testEndpoint(vni, 1), egress: true}
	forwardDrop(t, hA)
	ha := handleIn(t, hA.ns)
	if err := ha.LinkSetUp(mustLinkIn(t, ha, "lo")); err != nil { // up on any real host
		t.Fatal(err)
	}
	a.container = newNS(t)
	a.setUp(t, vni)
	hA.keep["vxe-4503"] = true
	ch := handleIn(t, a.container)
	if err := ch.RouteAdd(&netlink.Route{Gw: net.ParseIP("198.19.1.1"), LinkIndex: mustLinkIn(t, ch, "eth0").Attrs().Index}); err != nil {
		t.Fatalf("default route in container: %v", err)
	}
	stop := serveFrom(t, a.container)
	defer stop()

	ports := []PortBinding{{Proto: "tcp", HostPort: 18080, Port: 80}, {Proto: "udp", HostPort: 18053, Port: 53}}
	publish := func(ep EndpointConfig, ports []PortBinding) (got []PortBinding, err error) {
		runIn(t, hA.ns, func() {
			got, err = hA.plane.Publish(PublishConfig{VNI: vni, Endpoint: ep.ID, Addr: netip.MustParsePrefix(a.ip4).Addr(), Ports: ports})
		})
		return got, err
	}
	if _, err := publish(a.ep, ports); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for _, tc := range []struct {
		from   netns.NsHandle
		dst    string
		client string // the address the container sees, "" for any
	}{
		{hB.ns, "198.18.0.1", "198.18.0.2"},
		{hA.ns, "127.0.0.1", ""},
		{hA.ns, "198.18.0.1", ""},
	} {
		for _, proto := range []string{"tcp", "udp"} {
			port := map[string]string{"tcp": "18080", "udp": "18053"}[proto]
			got := askFrom(t, tc.from, proto, net.JoinHostPort(tc.dst, port))
			if got == "" || tc.client != "" && !strings.HasPrefix(got, tc.client+":") {
				t.Errorf("%s to %s:%s: container saw the client as %q, want %s", proto, tc.dst, port, got, tc.client)
			}
		}
	}

	// The same port again (another endpoint): taken; a range moves on.
	other := testEndpoint(vni, 2)
	runIn(t, hA.ns, func() {
		if _, err := hA.plane.EnsureEndpoint(other); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := publish(other, ports[:1]); !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "0.0.0.0:18080->80/tcp") {
		t.Errorf("Publish of a taken port: %v, want ErrPortInUse naming it", err)
	}
	got, err := publish(other, []PortBinding{{Proto: "tcp", HostPort: 18080, HostPortEnd: 18081, Port: 80}})
	if err != nil || len(got) != 1 || got[0].HostPort != 18081 {
		t.Errorf("Publish of range 18080-18081: %v, %v; want 18081", got, err)
	}
	if got := askFrom(t, hB.ns, "tcp", "198.18.0.1:18081"); !strings.HasPrefix(got, "198.18.0.2:") {
		t.Errorf("tcp to the range's port: container saw %q", got)
	}

	// Unpublish: no rule of it, the port free; the other endpoint's stay.
	runIn(t, hA.ns, func() {
		if err := hA.plane.Unpublish(vni, a.ep.ID); err != nil {
			t.Fatalf("Unpublish: %v", err)
		}
		out := iptablesSave(t)
		if strings.Contains(out, ShortID(a.ep.ID)) || strings.Contains(out, "18080") || !strings.Contains(out, "18081") {
			t.Errorf("rules after Unpublish:\n%s", out)
		}
		for _, b := range ports {
			c, err := bindPort(b)
			if err != nil {
				t.Errorf("port %v after Unpublish: %v", b, err)
				continue
			}
			c.Close()
		}
	})
	// The other endpoint goes without Unpublish (as when the plugin is
	// down): PrunePublished removes its rules and releases its port.
	runIn(t, hA.ns, func() {
		if err := hA.plane.DeleteEndpoint(vni, other.ID); err != nil {
			t.Fatal(err)
		}
		if err := hA.plane.PrunePublished(vni); err != nil {
			t.Fatalf("PrunePublished: %v", err)
		}
		if out := iptablesSave(t); strings.Contains(out, "18081") {
			t.Errorf("rules after PrunePublished:\n%s", out)
		}
		c, err := bindPort(PortBinding{Proto: "tcp", HostPort: 18081})
		if err != nil {
			t.Errorf("port 18081 after PrunePublished: %v", err)
		} else {
			c.Close()
		}
	})
	inNs := func() (owners []string) {
		if err := inNetns(hA.plane.log, hA.plane.nsPath(vni), func() (err error) { owners, err = portNatOwners(); return err }); err != nil {
			t.Fatal(err)
		}
		return owners
	}
	if o := inNs(); len(o) != 0 {
		t.Errorf("namespace rules left of %v", o)
	}

	// Published again, then the network goes: nothing is left.
	if _, err := publish(a.ep, ports); err != nil {
		t.Fatalf("Publish again: %v", err)
	}
	runIn(t, hA.ns, func() {
		if err := hA.plane.DeleteNetwork(vni); err != nil {
			t.Errorf("DeleteNetwork: %v", err)
		}
		delete(hA.keep, "vxe-4503")
		hA.assertClean(t)
		assertNoEgressRules(t)
	})
}

// serveFrom answers, in ns, tcp port 80 and udp port 53 with the client's
// address.
func serveFrom(t *testing.T, ns netns.NsHandle) (stop func()) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	runIn(t, ns, func() {
		var err error
		if ln, err = net.Listen("tcp4", ":80"); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp4", ":53"); err != nil {
			t.Fatal(err)
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(c.RemoteAddr().String()))
			c.Close()
		}
	}()
	go func() {
		var buf [16]byte
		for {
			_, from, err := pc.ReadFrom(buf[:])
			if err != nil {
				return
			}
			pc.WriteTo([]byte(from.String()), from)
		}
	}()
	return func() { ln.Close(); pc.Close() }
}

// askFrom connects from ns to addr and returns what it answers ("" and a
// test error on failure).
func askFrom(t *testing.T, ns netns.NsHandle, proto, addr string) string {
	t.Helper()
	var c net.Conn
	runIn(t, ns, func() {
		var err error
		if c, err = net.DialTimeout(proto+"4", addr, 3*time.Second); err != nil {
			t.Errorf("dial %s %s: %v", proto, addr, err)
		}
	})
	if c == nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if proto == "udp" {
		c.Write([]byte("?"))
	}
	var buf [64]byte
	n, err := c.Read(buf[:])
	if err != nil {
		t.Errorf("%s %s: %v", proto, addr, err)
	}
	return string(buf[:n])
}

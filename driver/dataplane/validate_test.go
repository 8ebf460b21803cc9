package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// These tests need no privileges: bad input must be refused before any
// kernel call, so a Plane that could not touch the kernel is enough.

func TestValidateNetwork(t *testing.T) {
	mod := func(f func(*NetworkConfig)) NetworkConfig {
		c := testNetwork(7)
		f(&c)
		return c
	}
	tests := []struct {
		name string
		c    NetworkConfig
		want string // substring of the error; "" means valid
	}{
		{"ok", testNetwork(7), ""},
		{"max vni", mod(func(c *NetworkConfig) { c.VNI = 1<<24 - 1 }), ""},
		{"no local ip", mod(func(c *NetworkConfig) { c.LocalIP = nil }), ""},
		{"no addresses", mod(func(c *NetworkConfig) { c.Addresses = nil }), ""},
		{"vni 0", mod(func(c *NetworkConfig) { c.VNI = 0 }), "vni 0"},
		{"vni too big", mod(func(c *NetworkConfig) { c.VNI = 1 << 24 }), "vni 16777216"},
		{"port 0", mod(func(c *NetworkConfig) { c.Port = 0 }), "port 0"},
		{"port too big", mod(func(c *NetworkConfig) { c.Port = 65536 }), "port 65536"},
		{"mtu too small", mod(func(c *NetworkConfig) { c.MTU = 67 }), "mtu 67"},
		{"mtu too big", mod(func(c *NetworkConfig) { c.MTU = 65536 }), "mtu 65536"},
		{"bad local ip", mod(func(c *NetworkConfig) { c.LocalIP = net.IP{1, 2, 3} }), "local ip"},
		{"invalid prefix", mod(func(c *NetworkConfig) { c.Addresses = []netip.Prefix{{}} }), "gateway address"},
		{"duplicate prefix", mod(func(c *NetworkConfig) {
			c.Addresses = append(c.Addresses, c.Addresses[0])
		}), "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkInvalid(t, tt.c.validate(), tt.want) })
	}
}

func TestValidateEndpoint(t *testing.T) {
	mod := func(f func(*EndpointConfig)) EndpointConfig {
		c := testEndpoint(7, 1)
		f(&c)
		return c
	}
	tests := []struct {
		name string
		c    EndpointConfig
		want string
	}{
		{"ok", testEndpoint(7, 1), ""},
		{"12 chars", mod(func(c *EndpointConfig) { c.ID = c.ID[:12] }), ""},
		{"vni 0", mod(func(c *EndpointConfig) { c.VNI = 0 }), "vni 0"},
		{"short id", mod(func(c *EndpointConfig) { c.ID = "abc" }), "shorter than 12"},
		{"upper-case id", mod(func(c *EndpointConfig) { c.ID = strings.ToUpper(c.ID) }), "not lower-case hex"},
		{"non-hex id", mod(func(c *EndpointConfig) { c.ID = "zz" + c.ID[2:] }), "not lower-case hex"},
		{"slash in id", mod(func(c *EndpointConfig) { c.ID = "../" + c.ID }), "not lower-case hex"},
		{"short mac", mod(func(c *EndpointConfig) { c.MAC = c.MAC[:5] }), "not 6 bytes"},
		{"multicast mac", mod(func(c *EndpointConfig) { c.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }), "multicast"},
		{"mtu", mod(func(c *EndpointConfig) { c.MTU = 0 }), "mtu 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkInvalid(t, tt.c.validate(), tt.want) })
	}
}

func TestValidatePeers(t *testing.T) {
	p1 := peer("198.19.1.2", "02:42:c6:13:00:02", "198.18.0.2")
	tests := []struct {
		name  string
		peers []Peer
		want  string
	}{
		{"ok", []Peer{p1, peer("2001:db8:19::3", "02:42:c6:13:00:03", "198.18.0.3")}, ""},
		{"same peer twice", []Peer{p1, p1}, ""},
		{"no ip", []Peer{{MAC: p1.MAC, VTEP: p1.VTEP}}, "peer ip"},
		{"unspecified ip", []Peer{peer("0.0.0.0", "02:42:c6:13:00:02", "198.18.0.2")}, "peer ip"},
		{"short mac", []Peer{{IP: p1.IP, MAC: p1.MAC[:3], VTEP: p1.VTEP}}, "not 6 bytes"},
		{"no vtep", []Peer{{IP: p1.IP, MAC: p1.MAC}}, "vtep"},
		{"unspecified vtep", []Peer{peer("198.19.1.2", "02:42:c6:13:00:02", "0.0.0.0")}, "vtep"},
		{"ip with two macs", []Peer{p1, peer("198.19.1.2", "02:42:c6:13:00:09", "198.18.0.2")}, "two macs"},
		{"mac with two vteps", []Peer{p1, peer("198.19.1.9", "02:42:c6:13:00:02", "198.18.0.9")}, "two vteps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkInvalid(t, validatePeers(7, tt.peers), tt.want) })
	}
}

func checkInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want ErrInvalid mentioning %q", err, want)
	}
}

// TestMethodsRejectBadInput calls every method with bad input on a Plane
// whose NetnsDir does not exist: reaching the kernel or the file system
// would show up as a different error.
func TestMethodsRejectBadInput(t *testing.T) {
	dir := t.TempDir() + "/absent"
	p := &Plane{dir: dir, log: logrus.NewEntry(logrus.New())}
	bad := testNetwork(0)
	badEP := testEndpoint(7, 1)
	badEP.MAC = nil
	_, epErr := p.EnsureEndpoint(badEP)
	_, lsErr := p.Endpoints(0)
	errs := map[string]error{
		"EnsureNetwork":  p.EnsureNetwork(bad),
		"DeleteNetwork":  p.DeleteNetwork(1 << 24),
		"EnsureEndpoint": epErr,
		"DeleteEndpoint": p.DeleteEndpoint(7, "xyz"),
		"Endpoints":      lsErr,
		"SetPeers":       p.SetPeers(7, []Peer{{}}),
	}
	for name, err := range errs {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", name, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad input touched the file system: %v", err)
	}
	if _, err := New(Options{NetnsDir: "relative/dir"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with a relative dir: %v, want ErrInvalid", err)
	}
}

func TestParseNsName(t *testing.T) {
	for name, want := range map[string]uint32{
		"vx-1": 1, "vx-16777215": 16777215, "vx-0": 0, "vx-16777216": 0,
		"vx-01": 0, "vx-": 0, "vx-1a": 0, "foo": 0, "vx-+1": 0,
	} {
		got, ok := parseNsName(name)
		if ok != (want != 0) || got != want {
			t.Errorf("parseNsName(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

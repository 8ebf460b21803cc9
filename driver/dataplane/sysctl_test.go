package dataplane

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vxnet/vxnet/internal/testenv"
)

func TestNewRejectsBadSysctlDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "netns")
	for _, bad := range []string{"proc/sys", "/nonexistent/sys", t.TempDir()} {
		if _, err := New(Options{NetnsDir: dir, SysctlDir: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("SysctlDir %q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a bad SysctlDir touched NetnsDir: %v", err)
	}
}

// TestSysctlDirElsewhere: sysctls written through another procfs instance
// (as a managed plugin does, its own /proc/sys being read-only) land in
// the network's namespace.
func TestSysctlDirElsewhere(t *testing.T) {
	h := newTestHost(t, "h1")
	proc := t.TempDir()
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Fatalf("mount procfs on %q: %v", proc, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(proc, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %q: %v", proc, err)
		}
	})
	p, err := New(Options{NetnsDir: h.dir, SysctlDir: filepath.Join(proc, "sys"), Log: testLog(t, "h1")})
	if err != nil {
		t.Fatal(err)
	}
	enterNS(t, h.ns)
	const key = "/proc/sys/net/ipv6/conf/default/accept_dad"
	if _, err := os.Stat(key); errors.Is(err, os.ErrNotExist) {
		testenv.Missing(t, "kernel without IPv6: no %s", key)
	}
	hostBefore := readSysctl(t, key)
	c := testNetwork(4111)
	if err := p.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	var inNet string
	if err := inNetns(p.log, p.nsPath(c.VNI), func() error { inNet = readSysctl(t, key); return nil }); err != nil {
		t.Fatal(err)
	}
	if inNet != "0" {
		t.Errorf("accept_dad in the network's namespace = %q, want 0", inNet)
	}
	if got := readSysctl(t, key); got != hostBefore {
		t.Errorf("accept_dad of the host namespace changed from %q to %q", hostBefore, got)
	}
}

func readSysctl(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestNamespaceSysctlsRepaired: a network's namespace gets bridge
// netfilter and IPv6 DAD off, the host namespace keeps its values, and a
// value changed behind vxnet's back is written back by EnsureNetwork (the
// driver's reconcile).
func TestNamespaceSysctlsRepaired(t *testing.T) {
	h := newTestHost(t, "h1")
	enterNS(t, h.ns)
	for _, s := range wantNsSysctls {
		if _, err := os.Stat(filepath.Join("/proc/sys", s.key)); errors.Is(err, os.ErrNotExist) {
			testenv.Missing(t, "kernel without /proc/sys/%s (IPv6, br_netfilter)", s.key)
		}
	}
	hostBefore := readSysctls(t)
	c := testNetwork(4112)
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	path := h.plane.nsPath(c.VNI)
	checkNsSysctls(t, path, "after EnsureNetwork")
	if got := readSysctls(t); !slices.Equal(got, hostBefore) {
		t.Errorf("host namespace sysctls changed from %v to %v", hostBefore, got)
	}
	// Drift: every key set back to the kernel's default for a new namespace.
	err := inNetns(h.plane.log, path, func() error {
		for _, s := range wantNsSysctls {
			if err := os.WriteFile(filepath.Join("/proc/sys", s.key), []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("set drift: %v", err)
	}
	if err := h.plane.EnsureNetwork(c); err != nil {
		t.Fatalf("EnsureNetwork (drift): %v", err)
	}
	checkNsSysctls(t, path, "after drift and EnsureNetwork")
}

// wantNsSysctls is what a network's namespace must hold, spelled out here
// rather than read from namespaceSysctls so that dropping one fails.
var wantNsSysctls = []nsSysctl{
	{"net/ipv6/conf/default/accept_dad", "0"},
	{"net/bridge/bridge-nf-call-iptables", "0"},
	{"net/bridge/bridge-nf-call-ip6tables", "0"},
	{"net/bridge/bridge-nf-call-arptables", "0"},
}

// readSysctls reads wantNsSysctls' keys in the current namespace.
func readSysctls(t *testing.T) []string {
	t.Helper()
	var vals []string
	for _, s := range wantNsSysctls {
		vals = append(vals, s.key+"="+readSysctl(t, filepath.Join("/proc/sys", s.key)))
	}
	return vals
}

func checkNsSysctls(t *testing.T, path, when string) {
	t.Helper()
	err := inNetns(testLog(t, "sysctl"), path, func() error {
		for _, s := range wantNsSysctls {
			if got := readSysctl(t, filepath.Join("/proc/sys", s.key)); got != s.value {
				t.Errorf("%s: %s in the network's namespace = %q, want %q", when, s.key, got, s.value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

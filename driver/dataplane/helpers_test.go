package dataplane

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vxnet/vxnet/internal/testenv"
)

// Every kernel test runs against a throwaway network namespace standing in
// for the host, with its own temporary NetnsDir; the real host's links are
// never touched. TestMain checks that nothing leaked into the real host.

// tmpPattern names this test process's temporary dirs: the leak check
// looks only at its own, so a second run of these tests at the same time
// (another worktree, a CI run) is not taken for a leak of this one.
var tmpPattern = fmt.Sprintf("vxnet-dataplane-test-%d-", os.Getpid())

func TestMain(m *testing.M) {
	before := leakSnapshot()
	code := m.Run()
	if leaked := leakSnapshot(); !slices.Equal(before, leaked) {
		fmt.Fprintf(os.Stderr, "leak check: before %q, after %q\n", before, leaked)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// leakSnapshot lists mounts under our temp dirs and links in the real host
// namespace (TestMain's thread) with the names this package uses.
func leakSnapshot() []string {
	var out []string
	if f, err := os.Open("/proc/thread-self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.Contains(fields[4], tmpPattern) {
				out = append(out, "mount "+fields[4])
			}
		}
		f.Close()
	}
	if c, err := nftables.New(); err == nil {
		tables, _ := c.ListTablesOfFamily(nftables.TableFamilyINet)
		for _, tb := range tables {
			if tb.Name == filterTable {
				out = append(out, "nft table inet "+tb.Name)
			}
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		n := l.Attrs().Name
		for _, pfx := range []string{"vxt", hostPrefix, portPrefix, bridgeName, vxlanName} {
			if strings.HasPrefix(n, pfx) {
				out = append(out, "link "+n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// requireRoot skips kernel tests when not root, unless CI=true, where a
// skipped kernel test would hide that nothing ran.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "kernel tests need root (netns, bind mounts, links)")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func testLog(t *testing.T, host string) *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.DebugLevel)
	l.SetOutput(testWriter{t})
	return l.WithField("host", host)
}

// newNS creates a network namespace without entering it; closed on cleanup.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	err := onLockedThread(func() error {
		var err error
		ns, err = netns.New()
		return err
	})
	if err != nil {
		t.Fatalf("create test netns: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("close test netns: %v", err)
		}
	})
	return ns
}

// runIn runs fn on the test goroutine, its thread switched into ns.
func runIn(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	restore := switchTo(t, ns)
	defer restore()
	fn()
}

// enterNS switches the test goroutine into ns until the test ends.
func enterNS(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	t.Cleanup(switchTo(t, ns))
}

func switchTo(t *testing.T, ns netns.NsHandle) func() {
	t.Helper()
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err == nil {
		err = netns.Set(ns)
	}
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter test netns: %v", err)
	}
	return func() {
		if err := netns.Set(origin); err != nil {
			t.Errorf("restore netns: %v", err) // thread stays locked and dies
			return
		}
		origin.Close()
		runtime.UnlockOSThread()
	}
}

// testHost is a throwaway "host": a network namespace and a Plane with its
// own NetnsDir. Cleanup deletes its networks and checks nothing is left.
type testHost struct {
	ns    netns.NsHandle
	dir   string
	plane *Plane
	keep  map[string]bool // links allowed in the host namespace
}

func newTestHost(t *testing.T, name string) *testHost {
	t.Helper()
	requireRoot(t)
	tmp, err := os.MkdirTemp("", tmpPattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	h := &testHost{ns: newNS(t), dir: filepath.Join(tmp, "netns"), keep: map[string]bool{"lo": true}}
	h.plane, err = New(Options{NetnsDir: h.dir, Log: testLog(t, name)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { unmountDir(t, h.dir) })
	t.Cleanup(func() { h.teardown(t) })
	return h
}

// teardown deletes what tests left and checks the host namespace and
// NetnsDir are clean.
func (h *testHost) teardown(t *testing.T) {
	runIn(t, h.ns, func() {
		vnis, err := h.plane.Networks()
		if err != nil {
			t.Errorf("Networks: %v", err)
		}
		for _, vni := range vnis {
			if err := h.plane.DeleteNetwork(vni); err != nil {
				t.Errorf("DeleteNetwork(%d): %v", vni, err)
			}
		}
		h.assertClean(t)
	})
}

// assertClean checks that the host namespace (current thread) holds only the
// allowed links and NetnsDir holds no files.
func (h *testHost) assertClean(t *testing.T) {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("list host links: %v", err)
	}
	for _, l := range links {
		if !h.keep[l.Attrs().Name] {
			t.Errorf("link %q left in host netns", l.Attrs().Name)
		}
	}
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		t.Fatalf("read netns dir: %v", err)
	}
	for _, e := range entries {
		t.Errorf("file %q left in netns dir", e.Name())
	}
}

func unmountDir(t *testing.T, dir string) {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Errorf("unmount netns dir %q: %v", dir, err)
	}
	data, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), " "+dir) {
		t.Errorf("mounts under %q left behind", dir)
	}
}

// nsHandle returns a netlink handle inside the network's namespace.
func (h *testHost) nsHandle(t *testing.T, vni uint32) *netlink.Handle {
	t.Helper()
	return handleAt(t, h.plane.nsPath(vni))
}

func handleAt(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open netns %q: %v", path, err)
	}
	defer ns.Close()
	return handleIn(t, ns)
}

func handleIn(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(nh.Close)
	return nh
}

func mustLinkIn(t *testing.T, nh *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := nh.LinkByName(name)
	if err != nil {
		t.Fatalf("link %q: %v", name, err)
	}
	return l
}

func linkNames(t *testing.T, nh *netlink.Handle) []string {
	t.Helper()
	links, err := nh.LinkList()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

// mark tags a link so a later check can tell the same device from a
// recreated one (interface indexes may be reused).
func mark(t *testing.T, nh *netlink.Handle, name string) {
	t.Helper()
	if err := nh.LinkSetAlias(mustLinkIn(t, nh, name), "vxnet-test-mark"); err != nil {
		t.Fatalf("mark %q: %v", name, err)
	}
}

// marked reports whether the named link still carries the mark.
func marked(t *testing.T, nh *netlink.Handle, name string) bool {
	t.Helper()
	return mustLinkIn(t, nh, name).Attrs().Alias == "vxnet-test-mark"
}

package names

import (
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inNewNetns runs fn on a locked thread inside a fresh network namespace,
// which goes when the thread is back in its own.
func inNewNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("kernel tests need root (CI=true: refusing to skip)")
		}
		t.Skip("kernel tests need root")
	}
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	ns, err := netns.New() // enters it
	if err != nil {
		origin.Close()
		runtime.UnlockOSThread()
		t.Fatalf("create test netns: %v", err)
	}
	defer func() {
		if err := netns.Set(origin); err != nil {
			t.Errorf("restore netns: %v", err) // the thread stays locked and dies
			return
		}
		ns.Close()
		origin.Close()
		runtime.UnlockOSThread()
	}()
	fn()
}

// EnsureLink makes the link with the address, up; a second call changes
// nothing; a link of that name of another type is an error.
func TestEnsureLink(t *testing.T) {
	addr := netip.MustParseAddr("169.254.53.53")
	inNewNetns(t, func() {
		for i := range 2 {
			if err := EnsureLink(addr); err != nil {
				t.Fatalf("call %d: %v", i+1, err)
			}
		}
		l, err := netlink.LinkByName(LinkName)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().Flags&0x1 == 0 { // net.FlagUp
			t.Errorf("%s is not up", LinkName)
		}
		as, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil || len(as) != 1 || as[0].IPNet.String() != "169.254.53.53/32" {
			t.Errorf("addresses of %s: %v, %v; want 169.254.53.53/32 alone", LinkName, as, err)
		}
		if err := netlink.LinkDel(l); err != nil {
			t.Fatal(err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = LinkName
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vxnet-dns-p"}); err != nil {
			t.Fatal(err)
		}
		if err := EnsureLink(addr); err == nil {
			t.Errorf("EnsureLink took a veth named %s", LinkName)
		}
	})
}

package liveness

import (
	"context"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxnet/vxnet/internal/testenv"
)

// TestPing probes from a throwaway network namespace holding only lo: the
// loopback address answers, an address with no route does not.
func TestPing(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "TestPing needs root: raw ICMP sockets in a throwaway network namespace")
	}
	type result struct {
		lo, none bool
		err      error
	}
	done := make(chan result)
	go func() {
		// The thread is left locked: it dies with the goroutine, and its
		// namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			done <- result{err: err}
			return
		}
		ctx := context.Background()
		done <- result{
			lo:   Ping(ctx, netip.MustParseAddr("127.0.0.1"), time.Second),
			none: Ping(ctx, netip.MustParseAddr("198.18.0.9"), 300*time.Millisecond),
		}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.lo {
		t.Error("127.0.0.1 did not answer an echo request")
	}
	if r.none {
		t.Error("198.18.0.9 (no route in the namespace) counted as answering")
	}
}

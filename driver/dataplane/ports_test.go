package dataplane

import (
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Endpoints runs every reconcile round beside the Joins: what it costs
// per port must stay small. It lists br0's ports from a dump it reads only
// the names and masters of; netlink.LinkList decoded every attribute of
// every link, about 20 allocations per port (issue #13). Links that are
// not br0's ports, though named like them, are not listed.
func TestEndpointsCostLittlePerPort(t *testing.T) {
	const vni = 4206
	h := setupNetwork(t, vni)
	nh := h.nsHandle(t, vni)
	stray := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: portPrefix + "0123456789ab"}, PeerName: "stray1"}
	if err := nh.LinkAdd(stray); err != nil {
		t.Fatalf("add stray link: %v", err)
	}
	var want []string
	allocs := map[int]float64{}
	for _, ports := range []int{20, 100} {
		for i := len(want); i < ports; i++ {
			c := testEndpoint(vni, i)
			if _, err := h.plane.EnsureEndpoint(c); err != nil {
				t.Fatalf("EnsureEndpoint %d: %v", i, err)
			}
			want = append(want, ShortID(c.ID))
		}
		slices.Sort(want)
		ids, err := h.plane.Endpoints(vni)
		if err != nil || !slices.Equal(ids, want) {
			t.Fatalf("Endpoints with %d ports = %v, %v; want %v", ports, ids, err, want)
		}
		allocs[ports] = testing.AllocsPerRun(5, func() {
			if _, err := h.plane.Endpoints(vni); err != nil {
				t.Fatal(err)
			}
		})
	}
	perPort := (allocs[100] - allocs[20]) / 80
	t.Logf("Endpoints: %.0f allocations with 20 ports, %.0f with 100: %.1f per port", allocs[20], allocs[100], perPort)
	if perPort > 4 {
		t.Errorf("Endpoints makes %.1f allocations per port (%.0f with 20 ports, %.0f with 100); want at most 4: it decodes more of each link than its name and master", perPort, allocs[20], allocs[100])
	}
	for _, id := range want {
		if err := h.plane.DeleteEndpoint(vni, id); err != nil {
			t.Fatalf("DeleteEndpoint %s: %v", id, err)
		}
	}
}

// nameAndMaster reads kernel messages: whatever the bytes, it must not
// panic, and a name it reports is the message's IFLA_IFNAME.
func FuzzNameAndMaster(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	// ifinfomsg, IFLA_IFNAME "br0", IFLA_MASTER 7
	f.Add(append(make([]byte, 16), 8, 0, 3, 0, 'b', 'r', '0', 0, 8, 0, 10, 0, 7, 0, 0, 0))
	f.Add(append(make([]byte, 16), 3, 0, 3, 0, 'x'))
	f.Fuzz(func(t *testing.T, msg []byte) {
		name, _, ok := nameAndMaster(msg)
		if ok && name == "" {
			t.Fatalf("ok without a name for %x", msg)
		}
	})
}

// Endpoints answers while endpoints are added and removed beside it, as
// reconcile runs beside the Joins: a listing the changes keep interrupting
// is made again holding them off, not failed (each failure sent reconcile
// to a round holding the driver's lock alone, issue #13).
func TestEndpointsWhileEndpointsChange(t *testing.T) {
	const vni, base, churners = 4207, 400, 4
	h := setupNetwork(t, vni)
	var want []string
	for i := range base {
		c := testEndpoint(vni, i)
		if _, err := h.plane.EnsureEndpoint(c); err != nil {
			t.Fatalf("EnsureEndpoint %d: %v", i, err)
		}
		want = append(want, ShortID(c.ID))
	}
	slices.Sort(want)
	stop := make(chan struct{})
	errs := make(chan error, churners)
	var wg sync.WaitGroup
	for w := range churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The thread enters the test host and dies with the goroutine.
			runtime.LockOSThread()
			if err := netns.Set(h.ns); err != nil {
				errs <- err
				return
			}
			c := testEndpoint(vni, 1000+w)
			for {
				select {
				case <-stop:
					errs <- h.plane.DeleteEndpoint(vni, c.ID)
					return
				default:
				}
				if _, err := h.plane.EnsureEndpoint(c); err != nil {
					errs <- err
					return
				}
				if err := h.plane.DeleteEndpoint(vni, c.ID); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var failed error
	for i := 0; i < 30 && failed == nil; i++ {
		ids, err := h.plane.Endpoints(vni)
		switch {
		case err != nil:
			failed = err
		case len(ids) < base:
			t.Errorf("listing %d: %d ports, want at least the %d that stay", i, len(ids), base)
		}
	}
	close(stop)
	wg.Wait()
	for range churners {
		if err := <-errs; err != nil {
			t.Errorf("endpoint changes beside the listings: %v", err)
		}
	}
	if failed != nil {
		t.Fatalf("Endpoints while endpoints change: %v", failed)
	}
	for _, id := range want {
		if err := h.plane.DeleteEndpoint(vni, id); err != nil {
			t.Fatalf("DeleteEndpoint %s: %v", id, err)
		}
	}
}

package driver

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
)

// countingPlane counts the SetPeers calls that reach the data plane.
type countingPlane struct {
	*fakePlane
	mu  sync.Mutex
	set int
}

func (c *countingPlane) SetPeers(vni uint32, peers []dataplane.Peer) error {
	c.mu.Lock()
	c.set++
	c.mu.Unlock()
	return c.fakePlane.SetPeers(vni, peers)
}

func (c *countingPlane) sets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set
}

// planRecord is endpoint record i of host h (VTEP 198.18.0.1<h>) at store
// index, with address and MAC numbers ip and mac: equal numbers on two
// records make them conflict.
func planRecord(i, h, ip, mac int, index uint64) store.KV {
	return rec(index, fmt.Sprintf("%064x", i+1), fmt.Sprintf("h%d", h), fmt.Sprintf("198.18.0.%d", 10+h),
		fmt.Sprintf("02:42:c6:13:%02x:%02x", mac/250, mac%250+2), fmt.Sprintf("198.19.%d.%d/22", ip/250, ip%250+2))
}

// A change of an endpoint record costs the peer watcher work and memory
// for that record, not for every record of the network, and programs the
// kernel only when the peers changed: an endpoint of this host is none
// (issue #13: at 1000 endpoints each change cost 4000 allocations, and a
// SetPeers of an unchanged, empty list). The resync programs all the same.
func TestPeerChangeCostsItsRecord(t *testing.T) {
	const vni = 0x100001
	l := logrus.New()
	l.SetOutput(io.Discard)
	plane := &countingPlane{fakePlane: newFakePlane()}
	d, err := New(Options{Store: newEnv(t).store, Plane: plane, HostID: "h1", VTEP: netip.MustParseAddr("198.18.0.11"), Log: logrus.NewEntry(l)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := plane.EnsureNetwork(dataplane.NetworkConfig{VNI: vni}); err != nil {
		t.Fatal(err)
	}
	// allocs is the allocations of one change of a network of n endpoints
	// of this host: an endpoint added, or removed.
	allocs := func(n int) float64 {
		var kvs []store.KV
		for i := range n {
			kvs = append(kvs, planRecord(i, 1, i, i, uint64(10+i)))
		}
		w := &watcher{key: "n", vni: vni, recs: newRecordCache(), logged: map[string]bool{}, lagged: map[string]bool{}}
		if err := d.program(w, kvs, true); err != nil {
			t.Fatal(err)
		}
		index := uint64(10 + n)
		return testing.AllocsPerRun(50, func() {
			index++
			grown := append(slices.Clip(kvs), planRecord(n, 1, n, n, index))
			if err := d.program(w, grown, true); err != nil {
				t.Fatal(err)
			}
			if err := d.program(w, kvs, true); err != nil {
				t.Fatal(err)
			}
		}) / 2
	}
	sets := plane.sets()
	few, many := allocs(100), allocs(1000)
	t.Logf("allocations per change: %.0f at 100 endpoints, %.0f at 1000", few, many)
	if many > few+30 {
		t.Errorf("a change allocates %.0f times with 100 endpoints, %.0f with 1000: want no more than 30 more", few, many)
	}
	// Two networks' first listings program; their hundreds of changes
	// of this host's endpoints do not.
	if got := plane.sets() - sets; got != 2 {
		t.Errorf("%d SetPeers for 2 first listings and their changes of local endpoints, want 2", got)
	}
	w := &watcher{key: "n", vni: vni, recs: newRecordCache(), logged: map[string]bool{}, lagged: map[string]bool{}}
	kvs := []store.KV{planRecord(0, 1, 0, 0, 10)}
	steps := []struct {
		what  string
		kvs   []store.KV
		fresh bool
		set   bool
		peers string
	}{
		{"first listing", kvs, true, true, ""},
		{"the same listing", kvs, true, false, ""},
		{"resync", nil, false, true, ""},
		{"a local endpoint added", append(slices.Clip(kvs), planRecord(1, 1, 1, 1, 11)), true, false, ""},
		{"a remote endpoint added", append(slices.Clip(kvs), planRecord(1, 1, 1, 1, 11), planRecord(2, 2, 2, 2, 12)), true, true, "198.19.0.4@198.18.0.12"},
		{"a local endpoint removed", append(slices.Clip(kvs), planRecord(2, 2, 2, 2, 12)), true, false, "198.19.0.4@198.18.0.12"},
		{"the remote endpoint removed", kvs, true, true, ""},
	}
	for _, s := range steps {
		before := plane.sets()
		if err := d.program(w, s.kvs, s.fresh); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		if set := plane.sets() > before; set != s.set || plane.peerIPs(vni) != s.peers {
			t.Errorf("%s: SetPeers called %v (want %v), peers %q (want %q)", s.what, set, s.set, plane.peerIPs(vni), s.peers)
		}
	}
}

// The plan's peers and logged problems are those of resolving the whole
// listing (decodedPeers), along random histories of adds, removals,
// moves and conflicting records (same address or MAC, bad records), in
// both write orders; and the fast path does carry most changes.
func TestPeerPlanMatchesFullResolution(t *testing.T) {
	for _, sc := range []scope.Scope{scope.Local, scope.Global} {
		t.Run(string(sc), func(t *testing.T) {
			e := newEnv(t)
			e.d.o.Scope = sc
			rng := rand.New(rand.NewPCG(7, uint64(len(sc))))
			steps, resolved, conflicted := 0, 0, 0
			for history := range 30 {
				w := &watcher{key: "n", vni: 1, recs: newRecordCache(), logged: map[string]bool{}}
				logged := map[string]bool{}
				live, gone := map[int]store.KV{}, map[int]store.KV{}
				index := uint64(1)
				for step := range 60 {
					for range 1 + rng.IntN(3) {
						i := rng.IntN(40)
						index++
						switch op := rng.IntN(10); {
						case op < 2:
							if kv, ok := live[i]; ok {
								gone[i] = kv
							}
							delete(live, i)
						case op == 2:
							// Back as it was (its host alive again, SetGone):
							// a record older than others of the plan.
							if kv, ok := gone[i]; ok {
								if _, ok := live[i]; !ok {
									live[i] = kv
								}
							}
						case op == 3:
							kv := planRecord(i, 1+rng.IntN(3), i, i, index)
							kv.Value = []byte(`{"id":"` + fmt.Sprintf("%064x", i+1) + `","mac":"bad"}`)
							live[i] = kv
						default:
							// Numbers below 30 are unique; above, 1 in 3 collides.
							ip, mac := i, i
							if rng.IntN(3) == 0 {
								ip = rng.IntN(40)
							}
							if rng.IntN(3) == 0 {
								mac = rng.IntN(40)
							}
							live[i] = planRecord(i, 1+rng.IntN(3), ip, mac, index)
						}
					}
					kvs := slices.SortedFunc(maps.Values(live), func(a, b store.KV) int { return strings.Compare(a.Key, b.Key) })
					if w.plan == nil {
						w.plan = newPeerPlan(sc.Swarm())
					}
					w.plan.update(kvs, w.recs)
					got := peerStrings(e.d.planPeers(w.plan, w.logged))
					want := peerStrings(e.d.decodedPeers(kvs, logged, nil))
					if fmt.Sprint(got) != fmt.Sprint(want) || !maps.Equal(w.logged, logged) {
						t.Fatalf("history %d step %d: plan %v logged %v; full resolution %v logged %v",
							history, step, got, slices.Sorted(maps.Keys(w.logged)), want, slices.Sorted(maps.Keys(logged)))
					}
					steps++
					if len(logged) > 0 {
						conflicted++
					}
				}
				resolved += w.plan.resolved
			}
			// The histories test the fast path, and with problems.
			if !sc.Swarm() && resolved > steps/2 || conflicted < steps/4 {
				t.Fatalf("%d steps: %d resolved whole, %d with problems logged", steps, resolved, conflicted)
			}
			t.Logf("%d steps: %d resolved whole, %d with problems logged", steps, resolved, conflicted)
		})
	}
}

package liveness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// flaky is a store whose Watch and Put fail while down is set.
// flaky is a store that can go down: Put fails, and Watch waits out the
// caller's deadline, then fails with errDown or, when hangs, with the
// deadline itself, as a Consul call retried to its timeout does.
type flaky struct {
	store.Store
	down  atomic.Bool
	hangs bool
}

var errDown = errors.New("store down")

func (f *flaky) Watch(ctx context.Context, p string, i uint64) ([]store.KV, uint64, error) {
	if f.down.Load() {
		<-ctx.Done()
		if f.hangs {
			return nil, 0, fmt.Errorf("watch %q: %w (%w)", p, ctx.Err(), store.ErrUnavailable)
		}
		return nil, 0, errDown
	}
	return f.Store.Watch(ctx, p, i)
}

func (f *flaky) Put(ctx context.Context, k string, v []byte) (uint64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Store.Put(ctx, k, v)
}

// world is the data plane and the underlay as one monitor sees them: the
// hosts it programs (with one VTEP each), which VTEPs answer probes, and
// every gone set it was told, in order.
type world struct {
	mu      sync.Mutex
	vteps   map[string][]netip.Addr
	down    map[netip.Addr]bool
	sets    []map[string]bool
	forgets []string
	probes  int
	counts  Counts // last Report
}

func newWorld(hosts ...string) *world {
	w := &world{vteps: map[string][]netip.Addr{}, down: map[netip.Addr]bool{}}
	for i, h := range hosts {
		w.vteps[h] = []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})}
	}
	return w
}

func (w *world) VTEPs() map[string][]netip.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]netip.Addr{}
	for h, v := range w.vteps {
		out[h] = v
	}
	return out
}

func (w *world) SetGone(g map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sets = append(w.sets, g)
}

func (w *world) probe(_ context.Context, a netip.Addr) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.probes++
	return !w.down[a]
}

func (w *world) forget(_ context.Context, h string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forgets = append(w.forgets, h)
	return nil
}

// cut switches the underlay of host h off (or on again).
func (w *world) cut(h string, off bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.vteps[h] {
		w.down[a] = off
	}
}

// gone is the last gone set told, and how many were told.
func (w *world) gone() (map[string]bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sets) == 0 {
		return map[string]bool{}, 0
	}
	return w.sets[len(w.sets)-1], len(w.sets)
}

func (w *world) report(c Counts) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts = c
}

// hasCounts tells whether the last Report was c.
func (w *world) hasCounts(c Counts) func() bool {
	return func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.counts == c
	}
}

func (w *world) forgotten() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.forgets...)
}

const (
	testInterval  = 100 * time.Millisecond
	testDeadAfter = 600 * time.Millisecond
)

// start runs a monitor for host on s; w is its view of the others (nil: a
// host that only heartbeats).
func start(t *testing.T, s store.Store, host string, w *world, forgetAfter time.Duration) context.CancelFunc {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if w == nil {
		w = newWorld()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Options{Store: s, HostID: host, Interval: testInterval, DeadAfter: testDeadAfter,
			ForgetAfter: forgetAfter, Peers: w, Probe: w.probe, ProbeEvery: 50 * time.Millisecond,
			OnForget: w.forget, Log: logrus.NewEntry(l), Report: w.report})
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !cond() {
		if time.Since(began) > 10*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(began)
}

func openBolt(t *testing.T) *flaky {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &flaky{Store: b}
}

// A silent host whose underlay answers keeps its entries however long it
// is silent; when its underlay stops answering it is gone after
// DeadAfter plus the probe rounds, and back when it answers again or
// heartbeats again.
func TestSilentHostGoneOnlyWhenUnderlayStops(t *testing.T) {
	s := openBolt(t)
	w := newWorld("h2")
	start(t, s, "h1", w, 0)
	stop2 := start(t, s, "h2", nil, 0)
	time.Sleep(200 * time.Millisecond)
	waitFor(t, "h2 counted alive", w.hasCounts(Counts{Alive: 1}))
	stop2()
	waitFor(t, "h2 counted silent", w.hasCounts(Counts{Silent: 1}))
	// Silent for 4×DeadAfter, underlay up: nothing removed.
	waitFor(t, "probes of the silent host", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.probes >= 3 })
	time.Sleep(4 * testDeadAfter)
	if g, n := w.gone(); n != 0 {
		t.Fatalf("silent host with a live underlay was declared gone: %v", g)
	}
	w.cut("h2", true)
	took := waitFor(t, "h2 gone", func() bool { g, _ := w.gone(); return g["h2"] })
	t.Logf("gone %s after its underlay stopped answering", took.Round(time.Millisecond))
	waitFor(t, "h2 counted gone", w.hasCounts(Counts{Gone: 1}))
	w.cut("h2", false)
	waitFor(t, "h2 programmed again (underlay answers)", func() bool { g, n := w.gone(); return n == 2 && !g["h2"] })
	w.cut("h2", true)
	waitFor(t, "h2 gone again", func() bool { g, n := w.gone(); return n == 3 && g["h2"] })
	start(t, s, "h2", nil, 0) // heartbeats again, underlay still down
	waitFor(t, "h2 back by heartbeat", func() bool { g, n := w.gone(); return n == 4 && !g["h2"] })
	waitFor(t, "h2 counted alive again", w.hasCounts(Counts{Alive: 1}))
	time.Sleep(2 * testDeadAfter)
	if g, n := w.gone(); n != 4 || g["h2"] {
		t.Fatalf("heartbeating host gone again: %v (%d sets)", g, n)
	}
}

// A host the data plane programs but whose heartbeat was never seen (it
// stopped before this host started) gets a fresh DeadAfter, then probes.
func TestHostNeverHeardOf(t *testing.T) {
	s := openBolt(t)
	w := newWorld("h9")
	w.cut("h9", true)
	began := time.Now()
	start(t, s, "h1", w, 0)
	waitFor(t, "h9 gone", func() bool { g, _ := w.gone(); return g["h9"] })
	if took := time.Since(began); took < testDeadAfter {
		t.Fatalf("h9 gone after %s, before DeadAfter", took)
	}
}

// A store outage longer than DeadAfter makes nobody silent, during it or
// right after the store returns, whether watches fail or time out (a store
// that hangs, as the e2e Consul outage showed).
func TestOutageMakesNobodySilent(t *testing.T) {
	for _, hangs := range []bool{false, true} {
		t.Run(fmt.Sprintf("hangs=%v", hangs), func(t *testing.T) {
			s := openBolt(t)
			s.hangs = hangs
			w1, w2 := newWorld("h2"), newWorld("h1")
			w1.cut("h2", true) // nobody answers probes: silence alone decides
			w2.cut("h1", true)
			start(t, s, "h1", w1, 0)
			start(t, s, "h2", w2, 0)
			time.Sleep(300 * time.Millisecond)
			s.down.Store(true)
			time.Sleep(time.Second)
			s.down.Store(false)
			time.Sleep(700 * time.Millisecond)
			for _, w := range []*world{w1, w2} {
				if g, n := w.gone(); n != 0 {
					t.Fatalf("hosts gone over a store outage: %v", g)
				}
			}
		})
	}
}

// A host silent for ForgetAfter is forgotten once, whether or not its
// underlay answers; not before.
func TestForgetAfterGrace(t *testing.T) {
	s := openBolt(t)
	w := newWorld("h2")
	const grace = 1500 * time.Millisecond
	start(t, s, "h1", w, grace)
	stop2 := start(t, s, "h2", nil, 0)
	time.Sleep(200 * time.Millisecond)
	stop2()
	stopped := time.Now()
	waitFor(t, "h2 forgotten", func() bool { return len(w.forgotten()) == 1 })
	// Silence counts from h2's last heartbeat, up to an Interval before
	// it stopped.
	if took := time.Since(stopped); took < grace-2*testInterval {
		t.Fatalf("forgotten %s after it stopped, before the grace of %s", took, grace)
	}
	w.mu.Lock()
	delete(w.vteps, "h2") // forgetting removed its endpoints
	w.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	if f := w.forgotten(); len(f) != 1 || f[0] != "h2" {
		t.Fatalf("forgotten %v, want h2 once", f)
	}
	if g, n := w.gone(); n != 0 {
		t.Fatalf("a host with a live underlay was declared gone: %v", g)
	}
}

package liveness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/keys"
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
	rounds  int    // probe rounds done (Reports)
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
	w.rounds++
}

// waitRounds waits until n more probe rounds than now are done, and
// returns how many of them probed.
func (w *world) waitRounds(t *testing.T, n int) (probes int) {
	t.Helper()
	w.mu.Lock()
	until, before := w.rounds+n, w.probes
	w.mu.Unlock()
	waitFor(t, fmt.Sprintf("%d probe rounds", n), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		probes = w.probes - before
		return w.rounds >= until
	})
	return probes
}

// hasCounts tells whether the last Report was c.
func (w *world) hasCounts(c Counts) func() bool {
	return func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.counts == c
	}
}

func (w *world) lastCounts() Counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts
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

// clock is the monitors' Now: it stands still until the test moves it,
// so silence is what the test says, whatever the machine's load. The
// monitors' loops still run on real timers (heartbeats, probe rounds).
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// pass moves the clock on by d, a heartbeat interval at a time, each step
// once every one of hosts has written a heartbeat: a monitor whose own
// heartbeat looks older than two intervals takes it for failing and calls
// nobody silent, as it must when its clock jumps.
func (c *clock) pass(t *testing.T, s store.Store, d time.Duration, hosts ...string) {
	t.Helper()
	for d > 0 {
		step := min(d, testInterval)
		c.advance(step)
		d -= step
		for _, h := range hosts {
			waitBeat(t, s, h)
		}
	}
}

// start runs a monitor for host on s with clock c; w is its view of the
// others (nil: a host that only heartbeats).
func start(t *testing.T, s store.Store, c *clock, host string, w *world, forgetAfter time.Duration, opts ...func(*Options)) context.CancelFunc {
	l := logrus.New()
	if os.Getenv("LVDEBUG") == "" {
		l.SetOutput(io.Discard)
	}
	l.SetLevel(logrus.DebugLevel)
	if w == nil {
		w = newWorld()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o := Options{Store: s, HostID: host, Interval: testInterval, DeadAfter: testDeadAfter,
			ForgetAfter: forgetAfter, Peers: w, Probe: w.probe, ProbeEvery: 50 * time.Millisecond,
			OnForget: w.forget, Log: logrus.NewEntry(l), Report: w.report, Now: c.Now}
		for _, opt := range opts {
			opt(&o)
		}
		Run(ctx, o)
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
	s, c := openBolt(t), newClock()
	w := newWorld("h2")
	start(t, s, c, "h1", w, 0)
	stop2 := start(t, s, c, "h2", nil, 0)
	waitFor(t, "h2 counted alive", w.hasCounts(Counts{Alive: 1}))
	stop2()
	if p := w.waitRounds(t, 3); p != 0 {
		t.Fatalf("%d probes of a host stopped no time ago", p)
	}
	c.pass(t, s, testDeadAfter, "h1")
	waitFor(t, "h2 counted silent", w.hasCounts(Counts{Silent: 1}))
	// Silent for 4×DeadAfter, underlay up: probed, nothing removed.
	c.pass(t, s, 3*testDeadAfter, "h1")
	waitFor(t, "probes of the silent host", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.probes >= 3 })
	if p := w.waitRounds(t, 3); p < 2 {
		t.Fatalf("%d probes in 3 rounds of a silent host", p)
	}
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
	start(t, s, c, "h2", nil, 0) // heartbeats again, underlay still down
	waitFor(t, "h2 back by heartbeat", func() bool { g, n := w.gone(); return n == 4 && !g["h2"] })
	waitFor(t, "h2 counted alive again", w.hasCounts(Counts{Alive: 1}))
	// 2×DeadAfter pass while h2 heartbeats.
	c.pass(t, s, 2*testDeadAfter, "h1", "h2")
	w.waitRounds(t, 3)
	if g, n := w.gone(); n != 4 || g["h2"] {
		t.Fatalf("heartbeating host gone again: %v (%d sets)", g, n)
	}
}

// waitBeat waits until host writes a heartbeat after the call.
func waitBeat(t *testing.T, s store.Store, host string) {
	t.Helper()
	index := func() uint64 {
		kv, err := s.Get(context.Background(), keys.Heartbeat(host))
		if err != nil {
			return 0
		}
		return kv.ModifyIndex
	}
	before := index()
	waitFor(t, host+"'s next heartbeat", func() bool { return index() != before })
}

// A host the data plane programs but whose heartbeat was never seen (it
// stopped before this host started) gets a fresh DeadAfter, then probes.
func TestHostNeverHeardOf(t *testing.T) {
	s, c := openBolt(t), newClock()
	w := newWorld("h9")
	w.cut("h9", true)
	start(t, s, c, "h1", w, 0)
	w.waitRounds(t, 1) // h9 first seen: its DeadAfter starts
	c.pass(t, s, testDeadAfter-time.Millisecond, "h1")
	if p := w.waitRounds(t, 4); p != 0 {
		t.Fatalf("%d probes of h9 before DeadAfter", p)
	}
	if g, n := w.gone(); n != 0 {
		t.Fatalf("h9 gone before DeadAfter: %v", g)
	}
	c.advance(time.Millisecond)
	waitFor(t, "h9 gone", func() bool { g, _ := w.gone(); return g["h9"] })
}

// A store outage longer than DeadAfter makes nobody silent, during it or
// right after the store returns, whether watches fail or time out (a store
// that hangs, as the e2e Consul outage showed).
func TestOutageMakesNobodySilent(t *testing.T) {
	for _, hangs := range []bool{false, true} {
		t.Run(fmt.Sprintf("hangs=%v", hangs), func(t *testing.T) {
			s, c := openBolt(t), newClock()
			s.hangs = hangs
			w1, w2 := newWorld("h2"), newWorld("h1")
			w1.cut("h2", true) // nobody answers probes: silence alone decides
			w2.cut("h1", true)
			m1, m2 := &counting{Store: s}, &counting{Store: s}
			start(t, m1, c, "h1", w1, 0)
			start(t, m2, c, "h2", w2, 0)
			for _, w := range []*world{w1, w2} {
				waitFor(t, "the other host counted alive", w.hasCounts(Counts{Alive: 1}))
			}
			s.down.Store(true)
			// Once a heartbeat of each failed, none goes through until
			// the store is back: then 2×DeadAfter pass at once.
			waitFor(t, "a failed heartbeat of each host", func() bool { return m1.putFailed.Load() > 0 && m2.putFailed.Load() > 0 })
			c.advance(2 * testDeadAfter)
			for _, w := range []*world{w1, w2} {
				if p := w.waitRounds(t, 4); p != 0 {
					t.Fatalf("%d probes during the outage", p)
				}
			}
			s.down.Store(false)
			up := []uint64{m1.ok.Load(), m2.ok.Load()}
			waitFor(t, "both monitors watching again", func() bool { return m1.ok.Load() > up[0] && m2.ok.Load() > up[1] })
			for _, w := range []*world{w1, w2} {
				w.waitRounds(t, 4)
				if g, n := w.gone(); n != 0 {
					t.Fatalf("hosts gone over a store outage: %v", g)
				}
			}
		})
	}
}

// counting is one monitor's view of a store: it counts the Watch calls
// that succeeded and the Puts (heartbeats) that failed.
type counting struct {
	store.Store
	ok, putFailed atomic.Uint64
}

func (c *counting) Watch(ctx context.Context, p string, i uint64) ([]store.KV, uint64, error) {
	kvs, next, err := c.Store.Watch(ctx, p, i)
	if err == nil {
		c.ok.Add(1)
	}
	return kvs, next, err
}

func (c *counting) Put(ctx context.Context, k string, v []byte) (uint64, error) {
	i, err := c.Store.Put(ctx, k, v)
	if err != nil {
		c.putFailed.Add(1)
	}
	return i, err
}

// A host silent for ForgetAfter is forgotten once, whether or not its
// underlay answers; not before.
func TestForgetAfterGrace(t *testing.T) {
	s, c := openBolt(t), newClock()
	w := newWorld("h2")
	const grace = 1500 * time.Millisecond
	start(t, s, c, "h1", w, grace)
	stop2 := start(t, s, c, "h2", nil, 0)
	waitFor(t, "h2 counted alive", w.hasCounts(Counts{Alive: 1}))
	stop2()
	// Silence counts from h2's last heartbeat, written at the clock's
	// present: a moment short of the grace, it is probed, not forgotten.
	c.pass(t, s, grace-time.Millisecond, "h1")
	if p := w.waitRounds(t, 4); p < 2 {
		t.Fatalf("%d probes of a host silent for %s", p, grace-time.Millisecond)
	}
	if f := w.forgotten(); len(f) != 0 {
		t.Fatalf("forgotten %v before the grace of %s", f, grace)
	}
	c.advance(time.Millisecond)
	waitFor(t, "h2 forgotten", func() bool { return len(w.forgotten()) == 1 })
	w.mu.Lock()
	delete(w.vteps, "h2") // forgetting removed its endpoints
	w.mu.Unlock()
	w.waitRounds(t, 4)
	if f := w.forgotten(); len(f) != 1 || f[0] != "h2" {
		t.Fatalf("forgotten %v, want h2 once", f)
	}
	if g, n := w.gone(); n != 0 {
		t.Fatalf("a host with a live underlay was declared gone: %v", g)
	}
}

package liveness

import (
	"context"
	"encoding/json"
	"github.com/sirupsen/logrus"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// sessions fakes Consul's sessions for the election: a key taken with
// Lock is held by its host until the test ends that host's session, which
// deletes the keys it held (behavior delete).
type sessions struct {
	mu   sync.Mutex
	held map[string]string // key → host
}

// lockStore is one host's view of the shared store, with Lock.
type lockStore struct {
	store.Store
	sess *sessions
	host string
}

func (l *lockStore) Lock(ctx context.Context, key string, value []byte, _ time.Duration) (bool, error) {
	l.sess.mu.Lock()
	defer l.sess.mu.Unlock()
	if h, ok := l.sess.held[key]; ok && h != l.host {
		return false, nil
	}
	if _, err := l.Store.Put(ctx, key, value); err != nil {
		return false, err
	}
	l.sess.held[key] = l.host
	return true, nil
}

// expire ends host's session: the keys it held go.
func (s *sessions) expire(t *testing.T, st store.Store, host string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, h := range s.held {
		if h == host {
			if err := st.Delete(context.Background(), k); err != nil {
				t.Fatal(err)
			}
			delete(s.held, k)
		}
	}
}

// holder tells which host holds slot, "" none.
func (s *sessions) holder(slot int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[keys.Monitor(slot)]
}

// beatReads counts one host's reads of alive/.
type beatReads struct {
	store.Store
	n atomic.Int64
}

func (b *beatReads) Watch(ctx context.Context, p string, i uint64) ([]store.KV, uint64, error) {
	if strings.HasPrefix(p, keys.Heartbeats) {
		b.n.Add(1)
	}
	return b.Store.Watch(ctx, p, i)
}

func (b *beatReads) List(ctx context.Context, p string) ([]store.KV, uint64, error) {
	if strings.HasPrefix(p, keys.Heartbeats) {
		b.n.Add(1)
	}
	return b.Store.List(ctx, p)
}

// cluster is hosts on one store with elections: each with its world (all
// the others programmed, one VTEP each) and its count of alive/ reads.
type cluster struct {
	s      *flaky
	sess   *sessions
	c      *clock
	worlds map[string]*world
	reads  map[string]*beatReads
	stops  map[string]context.CancelFunc
}

func newCluster(t *testing.T, hosts []string, opts ...func(*Options)) *cluster {
	cl := &cluster{s: openBolt(t), sess: &sessions{held: map[string]string{}}, c: newClock(),
		worlds: map[string]*world{}, reads: map[string]*beatReads{}, stops: map[string]context.CancelFunc{}}
	for _, h := range hosts {
		var others []string
		for _, o := range hosts {
			if o != h {
				others = append(others, o)
			}
		}
		cl.worlds[h] = newWorldOf(hosts, others)
		cl.reads[h] = &beatReads{Store: cl.s}
		cl.stops[h] = start(t, &lockStore{Store: cl.reads[h], sess: cl.sess, host: h}, cl.c, h, cl.worlds[h], 0, opts...)
	}
	return cl
}

// newWorldOf is a world programming others, each with the VTEP its index
// in all gives it, so that every world names a host's VTEP alike.
func newWorldOf(all, others []string) *world {
	w := newWorld()
	for i, h := range all {
		for _, o := range others {
			if o == h {
				w.vteps[h] = newWorld(all[:i+1]...).vteps[h]
			}
		}
	}
	return w
}

// switchOff stops host's plugin and its underlay in every world; its
// session stays until the test expires it.
func (cl *cluster) switchOff(host string) {
	cl.stops[host]()
	for _, w := range cl.worlds {
		w.cut(host, true)
	}
}

// record reads slot's record.
func (cl *cluster) record(t *testing.T, slot int) (Record, bool) {
	t.Helper()
	kv, err := cl.s.Get(context.Background(), keys.Monitor(slot))
	if err != nil {
		return Record{}, false
	}
	var r Record
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		t.Fatalf("record of slot %d: %v", slot, err)
	}
	return r, true
}

// monitors waits until both slots hold a healthy record and returns
// their hosts.
func (cl *cluster) monitors(t *testing.T) [slots]string {
	t.Helper()
	var out [slots]string
	waitFor(t, "two healthy liveness monitors", func() bool {
		for slot := range slots {
			r, ok := cl.record(t, slot)
			if !ok || !r.Healthy {
				return false
			}
			out[slot] = r.Host
		}
		return true
	})
	return out
}

func isMonitor(ms [slots]string, h string) bool {
	for _, m := range ms {
		if m == h {
			return true
		}
	}
	return false
}

// notMonitors returns those of hosts that are not in ms.
func notMonitors(ms [slots]string, hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if !isMonitor(ms, h) {
			out = append(out, h)
		}
	}
	return out
}

// Two hosts read alive/, the others follow their records and read it
// not once, and still find a switched-off host gone.
func TestFollowersDoNotReadHeartbeats(t *testing.T) {
	hosts := []string{"h1", "h2", "h3", "h4"}
	cl := newCluster(t, hosts)
	ms := cl.monitors(t)
	followers := notMonitors(ms, hosts)
	for _, h := range followers {
		waitFor(t, h+" counts the others alive", cl.worlds[h].hasCounts(Counts{Alive: 3}))
	}
	before := map[string]int64{}
	for _, h := range hosts {
		before[h] = cl.reads[h].n.Load()
	}
	time.Sleep(500 * time.Millisecond)
	for _, h := range hosts {
		n := cl.reads[h].n.Load() - before[h]
		t.Logf("%s (monitor %v): %d reads of alive/ in 500 ms", h, isMonitor(ms, h), n)
		if isMonitor(ms, h) && n == 0 {
			t.Errorf("monitor %s did not read alive/", h)
		}
		if !isMonitor(ms, h) && n != 0 {
			t.Errorf("follower %s read alive/ %d times", h, n)
		}
	}
	off, watcher := followers[0], followers[1]
	cl.switchOff(off)
	cl.c.pass(t, cl.s, testDeadAfter, ms[0], ms[1], watcher)
	took := waitFor(t, watcher+" finds "+off+" gone", func() bool { g, _ := cl.worlds[watcher].gone(); return g[off] })
	t.Logf("%s gone at %s %s after DeadAfter", off, watcher, took.Round(time.Millisecond))
	if n := cl.reads[watcher].n.Load() - before[watcher]; n != 0 {
		t.Errorf("follower %s read alive/ %d times", watcher, n)
	}
}

// A switched-off monitor keeps its slot until Consul invalidates its
// session (up to twice the TTL): the other monitor calls it silent on
// time, and a follower finds it gone after DeadAfter and its probes, as
// it would any host, without reading alive/ itself.
func TestMonitorSwitchedOff(t *testing.T) {
	hosts := []string{"h1", "h2", "h3"}
	cl := newCluster(t, hosts)
	ms := cl.monitors(t)
	follower := notMonitors(ms, hosts)[0]
	waitFor(t, follower+" counts the others alive", cl.worlds[follower].hasCounts(Counts{Alive: 2}))
	before := cl.reads[follower].n.Load()
	cl.switchOff(ms[0]) // its session and record stay
	cl.c.pass(t, cl.s, testDeadAfter-time.Millisecond, ms[1], follower)
	// It probes ms[0] as a monitor (reach.go), not yet as a silent host.
	cl.worlds[follower].waitRounds(t, 3)
	if !cl.worlds[follower].hasCounts(Counts{Alive: 2})() {
		t.Fatalf("%s silent or gone before DeadAfter: %+v", ms[0], cl.worlds[follower].lastCounts())
	}
	cl.c.pass(t, cl.s, time.Millisecond, ms[1], follower)
	took := waitFor(t, follower+" finds monitor "+ms[0]+" gone", func() bool { g, _ := cl.worlds[follower].gone(); return g[ms[0]] })
	t.Logf("switched-off monitor %s gone at %s %s after DeadAfter (its slot still held: %q)", ms[0], follower, took.Round(time.Millisecond), cl.sess.holder(0))
	if n := cl.reads[follower].n.Load() - before; n != 0 {
		t.Errorf("follower %s read alive/ %d times", follower, n)
	}
	if r, _ := cl.record(t, 1); r.Silent[ms[0]] == 0 {
		t.Errorf("the other monitor's record does not call %s silent: %+v", ms[0], r)
	}
}

// When a monitor's session goes, another host takes its slot within
// seconds and keeps what the records told it: a host they called silent
// is silent in its first record and in its own counts all along (with a
// fresh DeadAfter, as before, that host came back to life on the new
// monitor for another DeadAfter, its entries with it), and no host the
// records called alive is silent at once.
func TestFailoverKeepsSilence(t *testing.T) {
	hosts := []string{"h1", "h2", "h3", "h4"}
	cl := newCluster(t, hosts)
	ms := cl.monitors(t)
	followers := notMonitors(ms, hosts)
	quiet, next := followers[0], followers[1]
	waitFor(t, next+" counts the others alive", cl.worlds[next].hasCounts(Counts{Alive: 3}))
	cl.stops[quiet]() // its plugin stops, its underlay answers
	cl.c.pass(t, cl.s, testDeadAfter, ms[0], ms[1], next)
	waitFor(t, next+" counts "+quiet+" silent", cl.worlds[next].hasCounts(Counts{Alive: 2, Silent: 1}))
	cl.stops[ms[0]]()
	began := time.Now()
	cl.sess.expire(t, cl.s, ms[0])
	waitFor(t, next+" takes slot 0", func() bool { return cl.sess.holder(0) == next })
	took := time.Since(began)
	r := waitRecord(t, cl, 0, next)
	t.Logf("%s took slot 0 %s after %s's session went; first record %+v", next, took.Round(time.Millisecond), ms[0], r)
	if took > 2*time.Second {
		t.Errorf("slot 0 vacant for %s", took)
	}
	if _, ok := r.Silent[quiet]; !ok || len(r.Silent) != 1 {
		t.Errorf("new monitor's first record calls silent %v; want %s alone, as the records did", r.Silent, quiet)
	}
	// The stopped monitor was alive by the records: silent only after a
	// DeadAfter of its own. quiet stays silent meanwhile.
	waitFor(t, next+" still counts "+quiet+" silent", cl.worlds[next].hasCounts(Counts{Alive: 2, Silent: 1}))
	cl.c.pass(t, cl.s, testDeadAfter, ms[1], next)
	waitFor(t, "the new monitor calling "+ms[0]+" silent too", func() bool {
		r, _ := cl.record(t, 0)
		_, q := r.Silent[quiet]
		_, m := r.Silent[ms[0]]
		return q && m
	})
}

// waitRecord waits for a healthy record of slot by host.
func waitRecord(t *testing.T, cl *cluster, slot int, host string) Record {
	t.Helper()
	var r Record
	waitFor(t, "a healthy record by "+host, func() bool {
		var ok bool
		r, ok = cl.record(t, slot)
		return ok && r.Healthy && r.Host == host
	})
	return r
}

// A stuck monitor (its slot held, its record never rewritten) is
// followed only until its record has stood still for three KeepAlives:
// then the others read alive/ themselves and find a switched-off host
// gone, although the stuck record says it is alive.
func TestStuckMonitorFallback(t *testing.T) {
	const keepAlive = 200 * time.Millisecond
	s, c := openBolt(t), newClock()
	sess := &sessions{held: map[string]string{}}
	stuck := Record{Host: "m", Healthy: true, Alive: []string{"h1", "h2", "m"}, Seq: 1}
	b, _ := json.Marshal(stuck)
	for slot := range slots {
		if ok, err := (&lockStore{Store: s, sess: sess, host: "m"}).Lock(context.Background(), keys.Monitor(slot), b, 0); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	withKeepAlive := func(o *Options) { o.KeepAlive = keepAlive }
	w := newWorldOf([]string{"h1", "h2"}, []string{"h2"})
	reads := &beatReads{Store: s}
	start(t, &lockStore{Store: reads, sess: sess, host: "h1"}, c, "h1", w, 0, withKeepAlive)
	stop2 := start(t, &lockStore{Store: s, sess: sess, host: "h2"}, c, "h2", nil, 0, withKeepAlive)
	waitFor(t, "h2 counted alive", w.hasCounts(Counts{Alive: 2})) // h2 and m, from the records
	before := reads.n.Load()
	w.waitRounds(t, 3)
	if n := reads.n.Load() - before; n != 0 {
		t.Fatalf("h1 read alive/ %d times while valid records were there", n)
	}
	stop2()
	w.cut("h2", true)
	// The records go stale after 3 × keepAlive; then a fresh DeadAfter.
	c.pass(t, s, staleKeepAlives*keepAlive, "h1")
	waitFor(t, "h1 reading alive/ itself", func() bool { return reads.n.Load() > before })
	c.pass(t, s, testDeadAfter, "h1")
	waitFor(t, "h2 gone", func() bool { g, _ := w.gone(); return g["h2"] })
}

// A store outage longer than DeadAfter makes nobody silent, monitors and
// followers alike, during it or right after the store returns.
func TestOutageWithMonitors(t *testing.T) {
	for _, hangs := range []bool{false, true} {
		t.Run(map[bool]string{false: "fails", true: "hangs"}[hangs], func(t *testing.T) {
			hosts := []string{"h1", "h2", "h3"}
			cl := newCluster(t, hosts)
			cl.s.hangs = hangs
			for _, w := range cl.worlds {
				for _, h := range hosts {
					w.cut(h, true) // nobody answers probes: silence alone decides
				}
			}
			cl.monitors(t)
			for h, w := range cl.worlds {
				waitFor(t, h+" counts the others alive", w.hasCounts(Counts{Alive: 2}))
			}
			cl.s.down.Store(true)
			time.Sleep(3 * testInterval) // every heartbeat fails
			cl.c.advance(2 * testDeadAfter)
			for _, w := range cl.worlds {
				// The follower probes the monitors (reach.go): the
				// counts tell who is silent.
				w.waitRounds(t, 4)
				if c := w.lastCounts(); c != (Counts{Alive: 2}) {
					t.Fatalf("hosts silent or gone during the outage: %+v", c)
				}
			}
			cl.s.down.Store(false)
			cl.monitors(t)
			for _, w := range cl.worlds {
				w.waitRounds(t, 4)
				if g, n := w.gone(); n != 0 {
					t.Fatalf("hosts gone over a store outage: %v", g)
				}
			}
		})
	}
}

// Both monitors switched off together, with another host: their records
// stay, calling every host alive, until Consul invalidates their
// sessions (never, here). A follower finds the monitors dark by its
// probes, reads alive/ itself, and finds the three gone DeadAfter after
// the monitors' last answer, as one monitor would have (before change 30
// it followed the frozen records until the sessions went, then gave
// every host a fresh DeadAfter: 30 s in make scale).
func TestBothMonitorsSwitchedOff(t *testing.T) {
	hosts := []string{"h1", "h2", "h3", "h4", "h5"}
	cl := newCluster(t, hosts)
	ms := cl.monitors(t)
	followers := notMonitors(ms, hosts)
	off, watcher := followers[0], followers[1]
	w := cl.worlds[watcher]
	waitFor(t, watcher+" counts the others alive", w.hasCounts(Counts{Alive: 4}))
	w.waitRounds(t, 3) // it probed both monitors: they answer
	took := switchOffWithMonitors(t, cl, hosts, ms)
	t.Logf("both monitors and %s gone at %s %s after DeadAfter (slots still held by %q, %q)", off, watcher, took.Round(time.Millisecond), cl.sess.holder(0), cl.sess.holder(1))
}

// switchOffWithMonitors switches off both monitors ms and the first of
// the other hosts, and waits until the second, reading alive/ itself,
// finds the three gone DeadAfter after the monitors' last answer (not
// before); it returns how long that took once DeadAfter had passed.
func switchOffWithMonitors(t *testing.T, cl *cluster, hosts []string, ms [slots]string) time.Duration {
	t.Helper()
	followers := notMonitors(ms, hosts)
	off, watcher, other := followers[0], followers[1], followers[2]
	w := cl.worlds[watcher]
	before := cl.reads[watcher].n.Load()
	for _, h := range []string{ms[0], ms[1], off} {
		cl.switchOff(h) // their sessions and records stay
	}
	waitFor(t, watcher+" reading alive/ itself", func() bool { return cl.reads[watcher].n.Load() > before })
	cl.c.pass(t, cl.s, testDeadAfter-time.Millisecond, watcher, other)
	w.waitRounds(t, 3)
	if g, _ := w.gone(); len(g) != 0 || w.lastCounts() != (Counts{Alive: 4}) {
		t.Fatalf("gone %v, counts %+v before DeadAfter", g, w.lastCounts())
	}
	cl.c.pass(t, cl.s, time.Millisecond, watcher, other)
	return waitFor(t, watcher+" finds the monitors and "+off+" gone", func() bool {
		g, _ := w.gone()
		return g[ms[0]] && g[ms[1]] && g[off] && len(g) == 3
	})
}

// A host judged gone stays gone over a store outage, on the monitors and
// on the followers: the fresh DeadAfter every host gets when the store
// comes back is not for it (its entries would come back for a DeadAfter
// while it is still switched off).
func TestGoneStaysGoneOverOutage(t *testing.T) {
	hosts := []string{"h1", "h2", "h3", "h4"}
	cl := newCluster(t, hosts)
	ms := cl.monitors(t)
	off := notMonitors(ms, hosts)[0]
	var others []string
	for _, h := range hosts {
		if h != off {
			others = append(others, h)
		}
	}
	for _, h := range others {
		waitFor(t, h+" counts the others alive", cl.worlds[h].hasCounts(Counts{Alive: 3}))
	}
	cl.switchOff(off)
	cl.c.pass(t, cl.s, testDeadAfter, others...)
	for _, h := range others {
		waitFor(t, h+" finds "+off+" gone", func() bool { g, _ := cl.worlds[h].gone(); return g[off] })
	}
	sets := map[string]int{}
	for _, h := range others {
		_, sets[h] = cl.worlds[h].gone()
	}
	cl.s.down.Store(true)
	time.Sleep(3 * testInterval) // every heartbeat fails
	cl.c.advance(2 * testDeadAfter)
	for _, h := range others {
		cl.worlds[h].waitRounds(t, 2)
	}
	cl.s.down.Store(false)
	cl.monitors(t)
	for _, h := range others {
		w := cl.worlds[h]
		waitFor(t, h+" counting again", w.hasCounts(Counts{Alive: 2, Gone: 1}))
		w.waitRounds(t, 4)
		if g, n := w.gone(); !g[off] || n != sets[h] {
			t.Errorf("%s: %s not gone after the outage (gone %v, %d sets, %d before)", h, off, g, n, sets[h])
		}
	}
}

// muted makes some hosts' probes of some VTEPs go unanswered, on top of
// their worlds: a monitor that never answered one host (elected and
// switched off before that host's first probe of it, or with ICMP
// filtered on the way).
type muted struct {
	mu    sync.Mutex
	all   bool                           // every probe of every host
	pairs map[string]map[netip.Addr]bool // prober → VTEPs
}

// opt wraps each host's Probe with the mutes.
func (mu *muted) opt(o *Options) {
	probe, host := o.Probe, o.HostID
	o.Probe = func(ctx context.Context, a netip.Addr) bool {
		mu.mu.Lock()
		off := mu.all || mu.pairs[host][a]
		mu.mu.Unlock()
		return !off && probe(ctx, a)
	}
}

// only leaves muted just prober's probes of vteps.
func (mu *muted) only(prober string, vteps []netip.Addr) {
	mu.mu.Lock()
	defer mu.mu.Unlock()
	mu.all, mu.pairs = false, map[string]map[netip.Addr]bool{prober: {}}
	for _, a := range vteps {
		mu.pairs[prober][a] = true
	}
}

// A monitor one host never heard answer (the simulation's slot-1
// monitor, elected a moment before it was switched off with the other
// one) is dark to it once the other monitor, which did answer, is dark
// too: the host reads alive/ itself and finds the hosts switched off
// with them gone DeadAfter after the last answer, not once the slots'
// sessions go.
func TestUnansweredMonitorSwitchedOffWithTheOther(t *testing.T) {
	hosts := []string{"h1", "h2", "h3", "h4", "h5"}
	mu := &muted{all: true}
	cl := newCluster(t, hosts, mu.opt)
	ms := cl.monitors(t)
	followers := notMonitors(ms, hosts)
	off, watcher := followers[0], followers[1] // as switchOffWithMonitors picks them
	w := cl.worlds[watcher]
	mu.only(watcher, w.vteps[ms[1]])
	waitFor(t, watcher+" counts the others alive", w.hasCounts(Counts{Alive: 4}))
	w.waitRounds(t, 3) // ms[0] answered it, ms[1] never did
	switchOffWithMonitors(t, cl, hosts, ms)
	// The session of the one that answered goes first: the other one's
	// frozen record, which calls every host alive, stays unfollowed,
	// and the hosts gone stay gone while a new monitor takes the slot.
	_, from := w.gone()
	cl.sess.expire(t, cl.s, ms[0])
	waitFor(t, "a new monitor in slot 0", func() bool { r, ok := cl.record(t, 0); return ok && r.Healthy && r.Host != ms[0] })
	w.waitRounds(t, 4)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range w.sets[from-1:] {
		if !g[off] || !g[ms[1]] {
			t.Fatalf("after %s's session went, %s was told gone %v", ms[0], watcher, g)
		}
	}
}

// The silence of the hosts the records called alive counts from the last
// answer of a dark monitor, also when the one followed last never
// answered (it went dark with the other) and when the other went dark a
// round before and was no longer followed.
func TestVouchedByLastAnswer(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	answered := now.Add(-2 * time.Second)
	for _, tc := range []struct {
		name     string
		followed []string
		reach    map[string]*reach
		want     time.Time
	}{
		{"both answered, both dark", []string{"a", "b"},
			map[string]*reach{"a": {answered: true, failures: 2, last: answered}, "b": {answered: true, failures: 3, last: answered.Add(-time.Second)}}, answered},
		{"one never answered, both dark", []string{"a", "b"},
			map[string]*reach{"a": {answered: true, failures: 2, last: answered}, "b": {failures: 5}}, answered},
		{"the one that answered no longer followed", []string{"b"},
			map[string]*reach{"a": {answered: true, failures: 3, last: answered}, "b": {failures: 2}}, answered},
		{"the one followed answers", []string{"b"},
			map[string]*reach{"a": {answered: true, failures: 3, last: answered}, "b": {answered: true, last: now}}, now},
		{"the one followed never answered but does not fail", []string{"b"},
			map[string]*reach{"a": {answered: true, failures: 3, last: answered}, "b": {failures: 1}}, now},
		{"none ever answered", []string{"a", "b"},
			map[string]*reach{"a": {failures: 4}, "b": {failures: 4}}, now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &tracker{o: Options{ProbeFailures: 2}, reach: tc.reach, follow: followed{monitors: tc.followed}}
			m.judgeDarkLocked()
			if got := m.vouchedLocked(now); !got.Equal(tc.want) {
				t.Errorf("vouched %s, want %s", got.Sub(now), tc.want.Sub(now))
			}
		})
	}
}

// A live monitor that never answers a host (ICMP filtered on the way) is
// followed while the other monitor answers; when the other one is
// switched off the host reads alive/ itself, and the monitor it never
// heard answer, heartbeating, is not gone however long its probes fail.
func TestUnansweredLiveMonitorStays(t *testing.T) {
	hosts := []string{"h1", "h2", "h3", "h4", "h5"}
	mu := &muted{all: true}
	cl := newCluster(t, hosts, mu.opt)
	ms := cl.monitors(t)
	live := append([]string{ms[1]}, notMonitors(ms, hosts)...)
	watcher := live[2]
	w := cl.worlds[watcher]
	mu.only(watcher, w.vteps[ms[1]])
	waitFor(t, watcher+" counts the others alive", w.hasCounts(Counts{Alive: 4}))
	before := cl.reads[watcher].n.Load()
	w.waitRounds(t, 5)
	if n := cl.reads[watcher].n.Load() - before; n != 0 {
		t.Fatalf("%s read alive/ %d times while %s answered and %s was followed", watcher, n, ms[0], ms[1])
	}
	cl.switchOff(ms[0])
	cl.c.pass(t, cl.s, testDeadAfter, live...)
	waitFor(t, watcher+" finds "+ms[0]+" gone", func() bool { g, _ := w.gone(); return g[ms[0]] })
	cl.c.pass(t, cl.s, testDeadAfter, live...)
	w.waitRounds(t, 4)
	if g, _ := w.gone(); len(g) != 1 {
		t.Fatalf("gone %v, want only %s: %s heartbeats", g, ms[0], ms[1])
	}
}

// A host that judged both monitors gone by itself (reading alive/: it
// lost its slot, or no record was valid) does not follow their frozen
// records, which still call them and every host switched off with them
// alive: it would program the gone hosts' entries again until the
// monitors' sessions go. Seen in a forced make scale run: the slot-1
// monitor whose session ended at the kill took its records up again 3 s
// after judging the monitors gone ("gone host heartbeats again").
func TestMonitorJudgedGoneNotFollowed(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	var kvs []store.KV
	for slot, h := range []string{"m0", "m1"} {
		b, _ := json.Marshal(Record{Host: h, Healthy: true, Alive: []string{"h1", "h2", "m0", "m1"}})
		kvs = append(kvs, store.KV{Key: keys.Monitor(slot), Value: b, ModifyIndex: uint64(10 + slot)})
	}
	for _, tc := range []struct {
		name string
		gone []string
		want mode
	}{
		{"both gone", []string{"m0", "m1", "h2"}, watching},
		{"one gone", []string{"m0", "h2"}, following}, // m1 tells
		{"none gone", nil, following},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &tracker{o: Options{HostID: "h1", ProbeFailures: 2, KeepAlive: time.Minute, Interval: testInterval, DeadAfter: testDeadAfter,
				Log: logrus.NewEntry(logrus.New()), Now: func() time.Time { return now }},
				seen: map[string]*seen{}, records: map[string]*listed{}, reach: map[string]*reach{}}
			for _, h := range []string{"h2", "m0", "m1"} {
				m.seen[h] = &seen{at: now.Add(-time.Minute), gone: slices.Contains(tc.gone, h)}
			}
			m.applyRecords(kvs)
			if m.mode != tc.want {
				t.Fatalf("mode %d, want %d", m.mode, tc.want)
			}
			for _, h := range tc.gone {
				if tc.want == watching && m.silentFor(h, m.seen[h], now) < testDeadAfter {
					t.Errorf("%s, gone, is alive again", h)
				}
			}
		})
	}
}

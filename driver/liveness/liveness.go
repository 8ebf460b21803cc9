// Package liveness tells which vxnet hosts are alive, silent or gone.
//
// Every host writes a heartbeat key, alive/<host>, every Interval (on Consul
// held by a session with a 10 s TTL, so a stopped plugin's key goes by
// itself). A host is silent when its key has not moved for DeadAfter, as
// measured by the reader's own clock (so clock skew between hosts does
// not matter).
//
// Who reads the heartbeats (monitors.go, change 29): on Consul two hosts at
// a time, the elected liveness monitors, each holding a slot liveness/<slot>
// with its session. They read alive/ and publish in their slot which hosts
// are alive and which silent, written only when that changes (and every
// KeepAlive); every other host follows the two records with one blocking
// read instead of reading every heartbeat. A host is silent if a valid
// record says so, so a switched-off monitor, whose slot stays until Consul
// invalidates its session, is called silent on time by the other one.
// A follower also probes the monitors' VTEPs (reach.go, change 30): a
// record whose monitor stopped answering is not followed, so both
// monitors switched off together do not hold the others' purge until
// their sessions go. Without a valid record (first start, hosts of the
// earlier version only, both monitors gone, stuck or not answering) a
// host reads alive/ itself, as every host did before; on bbolt (one
// host) it always does.
//
// A silent heartbeat says only that a host's plugin is not talking to the
// store: the plugin may be down, upgrading or cut off from Consul while its
// containers run on. So silence alone changes nothing. The data plane
// decides: a silent host whose underlay addresses (VTEPs) stop answering
// probes for ProbeFailures rounds is gone, and its FDB and neighbour entries
// are left out (Peers.SetGone) until it answers or heartbeats again. Its
// store records and addresses stay: nothing of a host that may still run
// containers is released, until it comes back and reconciles, an operator
// forgets it (`vxnet host forget`), or it has been silent for ForgetAfter
// (OnForget).
//
// A store outage must not make every host look silent: while the watch
// (of alive/ or of the records) fails, or this host cannot write its own
// heartbeat, nobody becomes silent, and when the watch works again every
// host gets a fresh DeadAfter, but a host already judged gone: it stays
// gone (the outage told nothing of it) until it heartbeats or answers
// again. A host that starts reading alive/ itself (a new monitor, or no
// valid record left) keeps what the records said: the hosts silent by
// them stay silent since then, the others get a fresh DeadAfter, or are
// silent since the monitors' last answer when they stopped answering. A
// monitor in that state publishes, if it can, that it is not
// healthy, and nobody follows it; if it cannot, its session and slot go
// after the TTL. (A watch that times out looks like a quiet store, but
// every live host, this one included, moves alive/ every Interval: it is
// only quiet if this host's own heartbeat goes through.)
//
// The Interval (--heartbeat-interval) is 3 s; it was 2 s. Hosts of either
// version call a host silent only after DeadAfter (10 s) without its key
// moving, so beats 3 s apart keep a live host alive to both, with a lost
// beat to spare. The purge bound does not move: it counts from the last
// beat of a host that went (DeadAfter, the pause between reads, the
// probes). Each beat is a request, on Consul with a session renewal every
// third of the session's TTL (store/consul), and at 200 simulated hosts
// the beats were among the Consul servers' largest loads (docs/scaling.md,
// change 15).
package liveness

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/internal/pause"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Peers is what the monitor needs of the data plane of the other hosts.
type Peers interface {
	// VTEPs returns the underlay addresses of every other host this host
	// programs entries for.
	VTEPs() map[string][]netip.Addr
	// SetGone tells which hosts' entries to leave out of the kernel.
	SetGone(gone map[string]bool)
}

// Options configure Run.
type Options struct {
	Store     store.Store
	HostID    string
	Interval  time.Duration // heartbeat period
	DeadAfter time.Duration // heartbeat silence after which a host is probed
	// ForgetAfter is the silence after which a host is forgotten
	// (OnForget); 0 never.
	ForgetAfter time.Duration
	Peers       Peers
	// Probe tells whether addr answers (an ICMP echo); nil: never gone.
	Probe func(ctx context.Context, addr netip.Addr) bool
	// ProbeEvery is the period of probes of silent hosts (default 1 s);
	// ProbeFailures rounds without any answer make a host gone (default 2).
	ProbeEvery    time.Duration
	ProbeFailures int
	// OnForget releases a long-silent host's records and addresses; an
	// error makes it retried next round.
	OnForget func(ctx context.Context, host string) error
	Log      *logrus.Entry
	Now      func() time.Time // for tests; time.Now if nil
	// Report, if set, gets the other hosts' counts after every probe
	// round (counts.go), e.g. for metrics.
	Report func(Counts)
	// VTEPs are this host's underlay addresses, published in its record
	// while it is a monitor: the others probe them (reach.go).
	VTEPs []netip.Addr
	// KeepAlive is how often an elected monitor rewrites its record when
	// nothing changed (default 30 s); a record that has not moved for
	// three of them is taken for a stuck monitor's (monitors.go).
	KeepAlive time.Duration
}

// Heartbeat is the value of alive/<host>.
type Heartbeat struct {
	Beat uint64    `json:"beat"`
	At   time.Time `json:"at"` // informational only
}

// Run heartbeats, watches and probes until ctx ends.
func Run(ctx context.Context, o Options) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProbeEvery == 0 {
		o.ProbeEvery = time.Second
	}
	if o.ProbeFailures == 0 {
		o.ProbeFailures = 2
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = defaultKeepAlive
	}
	m := &tracker{o: o, seen: map[string]*seen{}, records: map[string]*listed{}, reach: map[string]*reach{}, wake: make(chan struct{}, 1)}
	m.lock, _ = o.Store.(store.Locker)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		heartbeat(ctx, o, &m.lastBeat)
	}()
	go func() {
		defer wg.Done()
		m.probeLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		m.publishLoop(ctx)
	}()
	m.run(ctx)
	wg.Wait()
}

// heartbeat writes alive/<host> every Interval and stores the time of the
// last write that went through in ok (UnixNano).
func heartbeat(ctx context.Context, o Options, ok *atomic.Int64) {
	var beat uint64
	failing := false
	for {
		beat++
		b, _ := json.Marshal(Heartbeat{Beat: beat, At: o.Now().UTC()})
		wctx, cancel := context.WithTimeout(ctx, o.Interval*2)
		err := put(wctx, o.Store, keys.Heartbeat(o.HostID), b)
		cancel()
		if err == nil {
			ok.Store(o.Now().UnixNano())
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			o.Log.WithError(err).Warn("heartbeat failed; other hosts see this one as silent if it lasts, and keep its entries while its underlay answers")
			failing = true
		case err == nil && failing:
			o.Log.Info("heartbeat works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			// A clean stop leaves no key; others see this host silent
			// after DeadAfter either way.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := o.Store.Delete(dctx, keys.Heartbeat(o.HostID)); err != nil {
				o.Log.WithError(err).Warn("remove heartbeat key")
			}
			return
		case <-time.After(o.Interval):
		}
	}
}

// sessionTTL is the TTL of the Consul session holding the heartbeat key
// (Consul's minimum): if this host dies, Consul removes its key by itself.
const sessionTTL = 10 * time.Second

// put writes a heartbeat, held by a session where the store has them.
func put(ctx context.Context, s store.Store, key string, value []byte) error {
	if e, ok := s.(store.Ephemeral); ok {
		return e.PutEphemeral(ctx, key, value, sessionTTL)
	}
	_, err := s.Put(ctx, key, value)
	return err
}

// seen is what this host knows of another one.
type seen struct {
	index     uint64    // ModifyIndex of its heartbeat last seen
	at        time.Time // when its heartbeat last moved (or was first seen)
	failures  int       // probe rounds in a row without an answer
	gone      bool
	forgotten bool
}

type tracker struct {
	o        Options
	lastBeat atomic.Int64 // this host's last heartbeat that went through
	lock     store.Locker // nil: no monitors are elected (bbolt: one host)

	// The run loop's own.
	beatIndex, recIndex uint64
	listedAt            time.Time // last read of the records while watching alive/
	vacantAt            time.Time // when to try to take a vacant slot (zero: none)

	mu      sync.Mutex
	seen    map[string]*seen
	healthy bool // the watch works: silence means something
	mode    mode
	slot    int  // held while monitoring
	read    bool // alive/ read since this host became a monitor
	// baseline: the next read of alive/ only notes the heartbeats'
	// indexes (carryFollowLocked).
	baseline bool
	records  map[string]*listed
	follow   followed          // what the valid records say, while following
	freshAt  time.Time         // the last fresh DeadAfter for every host
	reach    map[string]*reach // the monitors' probes (reach.go)
	wake     chan struct{}     // a monitor went dark or answers again
}

// beating tells whether this host's own heartbeat went through lately.
func (m *tracker) beating() bool {
	return m.o.Now().Sub(time.Unix(0, m.lastBeat.Load())) <= 2*m.o.Interval
}

// run learns which hosts are silent until ctx ends: from alive/ itself
// while monitoring (or on a store without Locker, or when no monitor's
// record is valid), else from the monitors' records.
func (m *tracker) run(ctx context.Context) {
	m.setHealthy(true)
	last := m.currentMode()
	for ctx.Err() == nil {
		cur := m.currentMode()
		if cur != last {
			m.beatIndex, m.recIndex, last = 0, 0, cur
		}
		switch {
		case cur == following:
			m.followStep(ctx)
		case cur == watching && m.lock != nil && time.Since(m.listedAt) >= m.o.Interval:
			m.listedAt = time.Now()
			m.listRecords(ctx)
		default:
			m.beatStep(ctx)
		}
	}
}

// beatStep reads alive/ once (a blocking read from the last index) and
// pauses for readEvery.
func (m *tracker) beatStep(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, m.o.Interval)
	kvs, next, err := store.WatchStale(wctx, m.o.Store, keys.Heartbeats, m.beatIndex)
	cancel()
	if m.failed(ctx, err, "watching heartbeats") {
		m.beatIndex = 0
		return
	}
	if err != nil {
		return // no change for a while: time passes for everyone
	}
	m.update(kvs)
	m.beatIndex = next
	pause.For(ctx, m.o.readEvery(m.currentMode() == monitoring))
}

// failed tells whether a watch that returned err failed, and then notes
// that nobody is silent until one works again. A timeout looks like a
// quiet store, but every live host, this one included, moves alive/
// every Interval: it is only quiet if this host's own heartbeat goes
// through.
func (m *tracker) failed(ctx context.Context, err error, what string) bool {
	if err == nil || ctx.Err() != nil {
		return ctx.Err() != nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		if m.isHealthy() && m.beating() {
			return false
		}
		if m.setHealthy(false) {
			m.o.Log.WithError(err).Warn(what + " timed out and this host's own heartbeat fails; calling no host silent until it works")
		}
		return true
	}
	if m.setHealthy(false) {
		m.o.Log.WithError(err).Warn(what + " failed; calling no host silent until it works")
	}
	pause.For(ctx, time.Second)
	return true
}

// readEvery is the least time between two reads of the heartbeats. Every
// host's heartbeat moves the prefix, so in a cluster each read returns at
// once with every host's key: a host reads the prefix once per readEvery
// (not once per heartbeat of every host), and its bytes grow with the
// hosts. Silence is noticed up to readEvery late, so it is a fifth of
// DeadAfter (2 s by default: a switched-off host is gone after at most
// DeadAfter + 2 s + the probe rounds), and no less than Interval/2:
// reading more often than the keys move finds nothing new. It was
// Interval/2 (1 s), and the reads of alive/ were the largest share of
// the requests of a 200-host cluster (docs/scaling.md).
//
// An elected monitor reads every DeadAfter/20 (500 ms): two hosts read
// alive/ instead of every host, and the silence they publish is what
// every host's purge counts from.
func (o Options) readEvery(monitor bool) time.Duration {
	if monitor {
		return o.DeadAfter / 20
	}
	return max(o.Interval/2, o.DeadAfter/5)
}

// setHealthy records whether the watch works and tells whether that
// changed. Coming back, every host gets a fresh DeadAfter.
func (m *tracker) setHealthy(ok bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.healthy == ok {
		return false
	}
	m.healthy = ok
	if ok {
		m.freshLocked()
	}
	return true
}

// freshLocked gives every host a fresh DeadAfter: silence counts from
// now. Not a host judged gone: the outage told nothing of it, and a fresh
// DeadAfter would program its entries again for that long while it is
// still switched off (its traffic lost instead of failing). It comes back
// when it heartbeats or answers probes, as ever.
func (m *tracker) freshLocked() {
	now := m.o.Now()
	for _, s := range m.seen {
		if !s.gone {
			s.at = now
		}
	}
	m.freshAt = now // and of the records' silent hosts (applyRecords)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (m *tracker) isHealthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthy
}

// update notes every heartbeat that moved; a working watch makes the
// monitor healthy.
func (m *tracker) update(kvs []store.KV) {
	if m.setHealthy(true) {
		m.o.Log.Info("watching heartbeats works again")
	}
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.read = true
	baseline := m.baseline
	m.baseline = false
	for _, kv := range kvs {
		host := keys.Last(kv.Key)
		s, ok := m.seen[host]
		if !ok {
			m.seen[host] = &seen{index: kv.ModifyIndex, at: now}
			continue
		}
		if baseline {
			s.index = kv.ModifyIndex
			continue
		}
		if kv.ModifyIndex < s.index {
			// An older copy (a follower a moment behind: the read is
			// stale, change 26) or a store reset (snapshot restored):
			// no news of the host; its next beat is above this.
			s.index = kv.ModifyIndex
			continue
		}
		if kv.ModifyIndex > s.index {
			if now.Sub(s.at) >= m.o.DeadAfter {
				m.o.Log.WithField("peer", host).Info("silent host heartbeats again")
			}
			s.index, s.at, s.failures, s.forgotten = kv.ModifyIndex, now, 0, false
		}
	}
}

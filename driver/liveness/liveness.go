// Package liveness tells which vxnet hosts are alive, silent or gone.
//
// Every host writes a heartbeat key, alive/<host>, every Interval (on Consul
// held by a session with a 10 s TTL, so a stopped plugin's key goes by
// itself); every host watches all heartbeats and calls a host silent when
// its key has not moved for DeadAfter, as measured by the watcher's own
// clock (so clock skew between hosts does not matter).
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
// fails, or this host cannot write its own heartbeat, nobody becomes
// silent, and when the watch works again every host gets a fresh DeadAfter.
// (A watch that times out looks like a quiet store, but every live host,
// this one included, moves alive/ every Interval: it is only quiet if this
// host's own heartbeat goes through.)
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
	m := &monitor{o: o, seen: map[string]*seen{}}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		heartbeat(ctx, o, &m.lastBeat)
	}()
	go func() {
		defer wg.Done()
		m.probeLoop(ctx)
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

type monitor struct {
	o        Options
	lastBeat atomic.Int64 // this host's last heartbeat that went through

	mu      sync.Mutex
	seen    map[string]*seen
	healthy bool // the heartbeat watch works: silence means something
}

// beating tells whether this host's own heartbeat went through lately.
func (m *monitor) beating() bool {
	return m.o.Now().Sub(time.Unix(0, m.lastBeat.Load())) <= 2*m.o.Interval
}

func (m *monitor) run(ctx context.Context) {
	var index uint64
	m.setHealthy(true)
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, m.o.Interval)
		kvs, next, err := store.WatchStale(wctx, m.o.Store, keys.Heartbeats, index)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if m.isHealthy() && m.beating() {
				continue // no change for a while: time passes for everyone
			}
			// The store is not answering (or was not before): a timeout
			// is no news of anybody.
			if m.setHealthy(false) {
				m.o.Log.WithError(err).Warn("watching heartbeats timed out and this host's own heartbeat fails; calling no host silent until it works")
			}
			index = 0
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				if m.setHealthy(false) {
					m.o.Log.WithError(err).Warn("watching heartbeats failed; calling no host silent until it works")
				}
				index = 0
				pause.For(ctx, time.Second)
			}
			continue
		}
		m.update(kvs)
		index = next
		pause.For(ctx, m.o.readEvery())
	}
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
func (o Options) readEvery() time.Duration {
	return max(o.Interval/2, o.DeadAfter/5)
}

// setHealthy records whether the heartbeat watch works and tells whether
// that changed. Coming back, every host gets a fresh DeadAfter.
func (m *monitor) setHealthy(ok bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.healthy == ok {
		return false
	}
	m.healthy = ok
	if ok {
		now := m.o.Now()
		for _, s := range m.seen {
			s.at = now
		}
	}
	return true
}

func (m *monitor) isHealthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthy
}

// update notes every heartbeat that moved; a working watch makes the
// monitor healthy.
func (m *monitor) update(kvs []store.KV) {
	if m.setHealthy(true) {
		m.o.Log.Info("watching heartbeats works again")
	}
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, kv := range kvs {
		host := keys.Last(kv.Key)
		s, ok := m.seen[host]
		if !ok {
			m.seen[host] = &seen{index: kv.ModifyIndex, at: now}
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

// probeLoop probes silent hosts every ProbeEvery, and tells the data plane
// when the set of gone hosts changes.
func (m *monitor) probeLoop(ctx context.Context) {
	t := time.NewTicker(m.o.ProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.round(ctx)
	}
}

// target is a silent host to probe in one round.
type target struct {
	host   string
	vteps  []netip.Addr
	silent time.Duration
}

// round runs one probe round.
func (m *monitor) round(ctx context.Context) {
	targets := m.silent()
	answered := make([]bool, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answered[i] = m.answers(ctx, tg.vteps)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	changed := m.judge(targets, answered)
	m.forget(ctx, targets)
	if changed {
		m.o.Peers.SetGone(m.gone())
	}
	if m.o.Report != nil {
		m.o.Report(m.counts())
	}
}

// silent lists the hosts, known from heartbeats or from the data plane,
// whose heartbeat has not moved for DeadAfter. While the heartbeat watch
// fails nobody is silent.
func (m *monitor) silent() []target {
	vteps := m.o.Peers.VTEPs()
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for host := range vteps {
		if _, ok := m.seen[host]; !ok && host != m.o.HostID {
			// Programmed but never heard of (its heartbeat went before
			// this host started): a fresh DeadAfter, then probes.
			m.seen[host] = &seen{at: now}
		}
	}
	if !m.healthy || !m.beating() {
		return nil
	}
	var out []target
	for host, s := range m.seen {
		if s.forgotten && len(vteps[host]) == 0 {
			delete(m.seen, host) // nothing of it left to program
			continue
		}
		if host == m.o.HostID || now.Sub(s.at) < m.o.DeadAfter {
			continue
		}
		out = append(out, target{host: host, vteps: vteps[host], silent: now.Sub(s.at)})
	}
	return out
}

// answers tells whether any of a host's VTEPs answers a probe. A host
// without a known VTEP has no entries to remove: it counts as answering.
func (m *monitor) answers(ctx context.Context, vteps []netip.Addr) bool {
	if m.o.Probe == nil || len(vteps) == 0 {
		return true
	}
	for _, a := range vteps {
		if m.o.Probe(ctx, a) {
			return true
		}
	}
	return false
}

// judge applies one round's answers and tells whether the gone set changed.
func (m *monitor) judge(targets []target, answered []bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for i, tg := range targets {
		s := m.seen[tg.host]
		if s == nil || m.o.Now().Sub(s.at) < m.o.DeadAfter {
			continue // heartbeat moved while probing
		}
		log := m.o.Log.WithFields(logrus.Fields{"peer": tg.host, "silent": tg.silent.Round(time.Second), "vteps": tg.vteps})
		switch {
		case answered[i] && s.gone:
			log.Warn("gone host answers probes again: programming its entries")
			s.gone, changed = false, true
		case answered[i]:
			if s.failures == 0 && !s.gone && tg.silent < m.o.DeadAfter+m.o.ProbeEvery {
				log.Warn("host is silent but its underlay answers: keeping its entries and addresses")
			}
		case !s.gone && s.failures+1 >= m.o.ProbeFailures:
			log.Warn("silent host does not answer probes: gone, leaving its entries out (its addresses stay leased)")
			s.gone, changed = true, true
		}
		if answered[i] {
			s.failures = 0
		} else {
			s.failures++
		}
	}
	// Hosts that heartbeat again are no longer gone.
	for host, s := range m.seen {
		if s.gone && m.o.Now().Sub(s.at) < m.o.DeadAfter {
			m.o.Log.WithField("peer", host).Info("gone host heartbeats again: programming its entries")
			s.gone, changed = false, true
		}
	}
	return changed
}

// forget releases hosts silent for ForgetAfter, once each.
func (m *monitor) forget(ctx context.Context, targets []target) {
	if m.o.ForgetAfter == 0 || m.o.OnForget == nil {
		return
	}
	for _, tg := range targets {
		if tg.silent < m.o.ForgetAfter || m.forgotten(tg.host) {
			continue
		}
		log := m.o.Log.WithFields(logrus.Fields{"peer": tg.host, "silent": tg.silent.Round(time.Second)})
		if err := m.o.OnForget(ctx, tg.host); err != nil {
			log.WithError(err).Warn("forgetting a host silent past the grace failed; retrying")
			continue
		}
		log.Warn("host silent past the grace (--forget-after): forgotten, its addresses released")
		m.mu.Lock()
		if s := m.seen[tg.host]; s != nil {
			s.forgotten = true
		}
		m.mu.Unlock()
	}
}

func (m *monitor) forgotten(host string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.seen[host]
	return s != nil && s.forgotten
}

// gone is the set of gone hosts.
func (m *monitor) gone() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for host, s := range m.seen {
		if s.gone {
			out[host] = true
		}
	}
	return out
}

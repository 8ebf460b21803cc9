package liveness

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Elected monitors (change 29): on a store.Locker (Consul) two hosts at a
// time, each holding a slot key liveness/<slot> with its session, read
// alive/ and publish in that key which hosts are alive and which silent,
// and for how long. The others follow those two records with one blocking
// read, which returns only when a record moves: when a host goes silent
// or comes back, when a host appears, and every KeepAlive. Each host still
// probes the silent hosts itself and alone decides which are gone.
//
// Why two: a monitor switched off keeps its slot until Consul invalidates
// its session (up to twice the 10 s TTL). Meanwhile the other monitor
// calls it (and any other host) silent on time: a host is silent if any
// valid record says so, so a dead monitor's frozen record delays nobody's
// purge; and the follower that takes the vacant slot keeps the silence
// the records told it. Two switched off together: the followers find
// them dark by their probes (reach.go, change 30).
//
// A record is valid while it says its monitor is healthy (it reads alive/
// and its own heartbeat goes through: the store-outage rules hold there)
// and it moved within three KeepAlives by this host's clock (a stuck
// monitor's does not), and its monitor is not dark (reach.go) nor judged
// gone by this host. With no valid record (first start, a cluster of
// hosts of the earlier version, both monitors gone) a host reads alive/
// itself as before, and takes a vacant slot when it sees one.
//
// A host that stops following the records, to read alive/ itself or to
// monitor, keeps what they said (carryFollowLocked); only a store outage
// gives every host a fresh DeadAfter, and not a host judged gone.

const (
	// slots is how many monitors are elected.
	slots = 2
	// defaultKeepAlive is how often a monitor rewrites an unchanged record.
	defaultKeepAlive = 30 * time.Second
	// staleKeepAlives is how many KeepAlives a record may stand still.
	staleKeepAlives = 3
)

// mode is how a host learns which hosts are silent.
type mode int

const (
	watching   mode = iota // reads alive/ itself
	monitoring             // holds a slot: reads alive/ and publishes
	following              // follows the monitors' records
)

// Record is the value of liveness/<slot>: an elected monitor's view.
type Record struct {
	Host string `json:"host"` // the monitor
	// Healthy is false while the monitor's read of alive/ or its own
	// heartbeat fails, and before its first read: it calls nobody silent
	// and the others do not follow it.
	Healthy bool `json:"healthy"`
	// Alive are the hosts whose heartbeat moved within DeadAfter.
	Alive []string `json:"alive,omitempty"`
	// Silent are the others, with how long each had been silent (ms)
	// when the record was written.
	Silent map[string]int64 `json:"silent_ms,omitempty"`
	Seq    uint64           `json:"seq"` // moves the key on a keep-alive
	// VTEPs are the monitor's underlay addresses: the followers probe
	// them, and stop following a record whose monitor stopped answering
	// (reach.go).
	VTEPs []netip.Addr `json:"vteps,omitempty"`
}

// listed is a record as this host listed it.
type listed struct {
	index uint64
	since time.Time // when this host first saw this index (its clock)
	rec   Record
	ok    bool // decoded
}

// followed is what the valid records say together.
type followed struct {
	alive    map[string]bool
	silent   map[string]time.Time // when its silence began, by this host's clock
	monitors []string             // of the records
}

func (m *tracker) currentMode() mode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mode
}

// setModeLocked switches how this host learns of silence and tells
// whether it changed. What it knew stays: watching alive/ and monitoring
// read the same heartbeats, and a host that stops following the records
// takes over what they said (carryFollowLocked). A fresh DeadAfter for
// every host here, as once, delayed purges past their bound: in a CI run
// a monitor back from its own cut-off from Consul lost its slot and, so
// switching, counted the silence of a host switched off 2 s before from
// the switch (TestNames/HostGone: 15.3 s, bound 15 s); and a follower
// that took the vacant slot of a switched-off monitor would call a host
// the records had it purge alive again, its entries back for another
// DeadAfter (TestFailoverKeepsSilence).
func (m *tracker) setModeLocked(to mode, slot int) bool {
	if m.mode == to && m.slot == slot {
		return false
	}
	from := m.mode
	m.mode, m.slot, m.read = to, slot, false
	if to != following {
		if from == following {
			m.carryFollowLocked()
		}
		m.follow = followed{}
	}
	return true
}

// carryFollowLocked gives the hosts the silence the records said, for a
// host that stops following them: a host silent by the records stays
// silent since then; every other host (the records called it alive, or
// did not know it) is silent from now, a fresh DeadAfter, or, when every
// monitor of the records went dark, from their last answer (reach.go);
// not from before the last store outage. A host this host judged gone
// keeps its silence (it comes back when it heartbeats or answers). The
// heartbeat indexes it has are old (followers do not read alive/), so
// the next read of alive/ only notes them (baseline) and does not count
// as a beat.
func (m *tracker) carryFollowLocked() {
	now := m.o.Now()
	since := later(m.vouchedLocked(now), m.freshAt)
	for host, s := range m.seen {
		if at, ok := m.follow.silent[host]; ok {
			s.at = at
		} else if !s.gone {
			s.at = since
		}
	}
	m.baseline = true
}

// silentFor is how long host (s its entry) has been silent, as this host
// knows it; below DeadAfter it is alive. Following, the records tell; a
// host they do not know is silent since it was last known alive.
func (m *tracker) silentFor(host string, s *seen, now time.Time) time.Duration {
	if m.mode == following {
		if at, ok := m.follow.silent[host]; ok {
			return now.Sub(at)
		}
		if m.follow.alive[host] {
			return 0
		}
	}
	return now.Sub(s.at)
}

// followStep waits for the records to move and follows them. The
// monitors' keep-alives move them every KeepAlive; the wait is twice
// that (a stuck monitor's record goes stale after three), or until a
// vacant slot is due: a blocking read cut short by its deadline costs its
// connection.
func (m *tracker) followStep(ctx context.Context) {
	wait := 2 * m.o.KeepAlive
	if !m.vacantAt.IsZero() {
		wait = max(min(wait, time.Until(m.vacantAt)), time.Millisecond)
	}
	kvs, next, woke, err := m.watchRecords(ctx, wait)
	if woke && err != nil && ctx.Err() == nil {
		m.applyRecords(nil) // a monitor went dark or answers again
		m.maybeLead(ctx)
		return
	}
	if m.failed(ctx, err, "watching the liveness monitors' records") {
		m.recIndex = 0
		return
	}
	if err == nil {
		if m.setHealthy(true) {
			m.o.Log.Info("watching the liveness monitors' records works again")
		}
		m.recIndex = next
		m.applyRecords(kvs)
	} else {
		m.applyRecords(nil) // unchanged; they may have gone stale
	}
	m.maybeLead(ctx)
}

// listRecords reads the records once, while watching alive/ itself.
func (m *tracker) listRecords(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, m.o.Interval)
	kvs, _, err := store.WatchStale(lctx, m.o.Store, keys.Monitors, 0)
	cancel()
	if err != nil {
		return // the watch of alive/ tells an outage
	}
	m.applyRecords(kvs)
	m.maybeLead(ctx)
}

// applyRecords takes the listing of the records (nil: the last one) and
// follows the valid ones, or watches alive/ when there are none; it notes
// a vacant slot to take after a random pause (so that not every host
// tries at once).
func (m *tracker) applyRecords(kvs []store.KV) {
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if kvs != nil || len(m.records) == 0 {
		recs := make(map[string]*listed, len(kvs))
		for _, kv := range kvs {
			if l, ok := m.records[kv.Key]; ok && l.index == kv.ModifyIndex {
				recs[kv.Key] = l
				continue
			}
			l := &listed{index: kv.ModifyIndex, since: now}
			l.ok = json.Unmarshal(kv.Value, &l.rec) == nil
			recs[kv.Key] = l
		}
		m.records = recs
	}
	vacant := false
	for slot := range slots {
		_, held := m.records[keys.Monitor(slot)]
		vacant = vacant || !held
	}
	switch {
	case !vacant || m.mode == monitoring:
		m.vacantAt = time.Time{}
	case m.vacantAt.IsZero():
		m.vacantAt = time.Now().Add(rand.N(m.o.Interval/3 + 1))
	}
	if m.mode == monitoring {
		return
	}
	f, n := m.validLocked(now)
	if n == 0 {
		if m.setModeLocked(watching, 0) {
			m.o.Log.Info("no valid liveness monitor record: reading every host's heartbeat itself")
		}
		return
	}
	if m.setModeLocked(following, 0) {
		m.o.Log.Info("following the liveness monitors' records")
	}
	m.follow = f
	for host, at := range f.silent {
		if s := m.seenLocked(host, now); !s.gone {
			// Not silent from before the last store outage; a host
			// judged gone keeps its silence (freshLocked).
			f.silent[host] = later(at, m.freshAt)
		}
	}
	for host := range f.alive {
		if _, silent := f.silent[host]; silent {
			continue
		}
		s := m.seenLocked(host, now)
		s.at, s.failures, s.forgotten = now, 0, false
	}
}

// validLocked joins the valid records: a host is alive if one says so
// and none says it is silent; its silence began when the longest one
// says. It returns how many records are valid.
func (m *tracker) validLocked(now time.Time) (followed, int) {
	f := followed{alive: map[string]bool{}, silent: map[string]time.Time{}}
	n := 0
	for _, l := range m.records {
		if !l.ok || !l.rec.Healthy || l.rec.Host == m.o.HostID || now.Sub(l.since) >= staleKeepAlives*m.o.KeepAlive || m.darkLocked(l.rec.Host) || m.goneLocked(l.rec.Host) {
			continue
		}
		n++
		f.monitors = append(f.monitors, l.rec.Host)
		for _, h := range l.rec.Alive {
			f.alive[h] = true
		}
		for h, ms := range l.rec.Silent {
			at := l.since.Add(-time.Duration(ms) * time.Millisecond)
			if cur, ok := f.silent[h]; !ok || at.Before(cur) {
				f.silent[h] = at
			}
		}
	}
	return f, n
}

// goneLocked tells whether this host judged host gone: silent and not
// answering probes, by its own reads of alive/ or by other records. Its
// record, frozen, would call it and the hosts switched off with it alive
// (a host that lost its slot, or read alive/ for want of a valid record,
// and took up the frozen records of two monitors switched off together:
// it had never probed them, so they were not dark to it).
func (m *tracker) goneLocked(host string) bool {
	s := m.seen[host]
	return s != nil && s.gone
}

// seenLocked returns host's entry, new (alive from now) if there was none.
func (m *tracker) seenLocked(host string, now time.Time) *seen {
	s, ok := m.seen[host]
	if !ok {
		s = &seen{at: now}
		m.seen[host] = s
	}
	return s
}

// maybeLead takes a vacant slot once its pause is over. Its first record
// says the monitor is not healthy yet: the others follow it from its
// first read of alive/ (publishLoop).
func (m *tracker) maybeLead(ctx context.Context) {
	m.mu.Lock()
	due := !m.vacantAt.IsZero() && !time.Now().Before(m.vacantAt) && m.mode != monitoring
	records := m.records
	m.mu.Unlock()
	if !due {
		return
	}
	m.vacantAt = time.Time{}
	for slot := range slots {
		key := keys.Monitor(slot)
		if _, held := records[key]; held {
			continue
		}
		b, _ := json.Marshal(Record{Host: m.o.HostID})
		held, err := m.lock.Lock(ctx, key, b, sessionTTL)
		if err != nil {
			m.o.Log.WithError(err).Debug("taking a vacant liveness monitor slot failed")
			return
		}
		if held {
			m.mu.Lock()
			m.setModeLocked(monitoring, slot)
			m.mu.Unlock()
			m.o.Log.WithField("slot", slot).Info("liveness monitor: reading every host's heartbeat and publishing the silent ones")
		}
		return
	}
}

// record is the record this host would publish now, and its slot; ok is
// false unless it is monitoring.
func (m *tracker) record() (rec Record, slot int, ok bool) {
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mode != monitoring {
		return Record{}, 0, false
	}
	rec = Record{Host: m.o.HostID, Healthy: m.healthy && m.read && m.beating(), VTEPs: m.o.VTEPs}
	if !rec.Healthy {
		return rec, m.slot, true
	}
	for host, s := range m.seen {
		if d := m.silentFor(host, s, now); host == m.o.HostID || d < m.o.DeadAfter {
			rec.Alive = append(rec.Alive, host)
		} else {
			if rec.Silent == nil {
				rec.Silent = map[string]int64{}
			}
			rec.Silent[host] = d.Milliseconds()
		}
	}
	slices.Sort(rec.Alive)
	return rec, m.slot, true
}

// publishLoop writes this host's record while it is a monitor: at once
// when a host goes silent or comes back or the monitor's health changes,
// new alive hosts at most every Interval, and every KeepAlive. A write
// that finds the slot held by another session ends the monitoring.
func (m *tracker) publishLoop(ctx context.Context) {
	if m.lock == nil {
		return
	}
	t := time.NewTicker(max(m.o.ProbeEvery/10, time.Millisecond))
	defer t.Stop()
	var last Record
	var wrote time.Time       // this host's clock: the keep-alive
	var grew, retry time.Time // real time: pacing
	slot := -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rec, s, ok := m.record()
		if !ok {
			slot = -1
			continue
		}
		if s != slot {
			slot, last = s, Record{Host: m.o.HostID} // what taking the slot wrote
			wrote = m.o.Now()
		}
		if time.Now().Before(retry) || !m.due(last, rec, wrote, grew) {
			continue
		}
		rec.Seq = last.Seq + 1
		b, _ := json.Marshal(rec)
		held, err := m.lock.Lock(ctx, keys.Monitor(slot), b, sessionTTL)
		if err != nil {
			if ctx.Err() == nil {
				m.o.Log.WithError(err).Debug("writing the liveness monitor record failed; trying again")
			}
			retry = time.Now().Add(m.o.Interval)
			continue
		}
		if !held {
			m.lose(slot)
			slot = -1
			continue
		}
		last, wrote, grew = rec, m.o.Now(), time.Now()
	}
}

// due tells whether rec must be written, last being the record written.
func (m *tracker) due(last, rec Record, wrote, grew time.Time) bool {
	if rec.Healthy != last.Healthy || !sameKeys(rec.Silent, last.Silent) || m.o.Now().Sub(wrote) >= m.o.KeepAlive {
		return true
	}
	if slices.Equal(rec.Alive, last.Alive) {
		return false
	}
	for _, h := range last.Alive {
		if !slices.Contains(rec.Alive, h) {
			return true // gone from the record (forgotten)
		}
	}
	return time.Since(grew) >= m.o.Interval // new hosts: no hurry
}

func sameKeys(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// lose ends the monitoring of slot: another session holds it (this host
// was cut off for longer than its session's TTL).
func (m *tracker) lose(slot int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mode == monitoring && m.slot == slot {
		m.setModeLocked(watching, 0)
		m.o.Log.WithField("slot", slot).Warn("liveness monitor slot taken by another host: no longer a monitor")
	}
}

package liveness

import (
	"context"
	"net/netip"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Dark monitors (change 30). A monitor switched off keeps its slot and
// its record, which still calls every host alive, until Consul
// invalidates its session (up to twice the 10 s TTL). With one monitor
// off the other one's record covers (a host is silent if any valid record
// says so); with both off together the followers had nothing to go by but
// the two frozen records until the sessions went, and then gave every
// host a fresh DeadAfter: a host switched off with them was purged after
// about 30 s (make scale, 50 hosts), not 15.
//
// So a host that follows the records also probes their monitors' VTEPs
// (published in the records, else the data plane's), in its probe rounds,
// as it probes silent hosts: no store request, two ICMP echoes a second.
// A monitor that answered and then fails ProbeFailures rounds in a row is
// dark: its record is not followed until it answers again. With every
// record dark the host reads alive/ itself, as with no valid record, and
// counts the silence of the hosts the records called alive from the last
// answer of their monitors (vouchedLocked), not from the switch: up to
// then the records were kept, so those hosts were alive then; from then
// on nothing told. A live host's heartbeat moves within an Interval, and
// the host sees it move long before DeadAfter has passed; a host switched
// off with the monitors is silent DeadAfter after they went, as with one
// monitor. Silence alone still changes nothing: the probes decide.
//
// A monitor that never answered this host is dark only while a monitor
// that did answer is dark too. Alone it may be a live monitor behind a
// filter that drops ICMP: its record is followed as before (were it
// dark, a cluster that filters ICMP would have every host read alive/
// for ever). With the other one dark it is most likely the other half
// of both monitors switched off together, elected a moment before (the
// vacant slot of a monitor cut off from Consul for longer than its
// session's TTL) and switched off before this host's first probe of it
// answered: followed, its frozen record held the purge of the hosts
// switched off with it until its session went, then gave them a fresh
// DeadAfter (29.5 s in a make scale run that forced it, 11.7 s now).
// Taking it for dark costs, when it is in fact alive, the reads of
// alive/ of both monitors dark until a new monitor holds the dark one's
// slot, and the silence it starts counts from the other monitor's last
// answer: a live host's heartbeat moves long before DeadAfter has
// passed. If neither monitor
// ever answered, both switched off together cost what they did (the
// records' sessions, then DeadAfter).
// A monitor whose plugin stops while its host runs on answers probes:
// covered by the other monitor as before, not when both stop together.

// reach is what this host's probes tell of one monitor's underlay.
type reach struct {
	answered bool      // it answered a probe since this host probes it
	failures int       // probe rounds in a row without an answer
	last     time.Time // the end of the last round it answered in
	// dark: its record is not followed. It answered and then failed
	// ProbeFailures rounds in a row; or it never answered and failed
	// them while one that did was dark, and it stays dark until it
	// answers (when the other one's session goes, its frozen record
	// must not be followed again: the hosts gone would come back).
	dark bool
}

func (r *reach) failing(failures int) bool { return r.failures >= failures }

func (m *tracker) darkLocked(host string) bool {
	r := m.reach[host]
	return r != nil && r.dark
}

// judgeDarkLocked sets each monitor's dark after a round and returns
// those whose darkness changed.
func (m *tracker) judgeDarkLocked() (changed []string) {
	was := map[string]bool{}
	other := false // a monitor that answered is dark
	for h, r := range m.reach {
		was[h] = r.dark
		if r.answered {
			r.dark = r.failing(m.o.ProbeFailures)
			other = other || r.dark
		}
	}
	for _, r := range m.reach {
		if !r.answered {
			r.dark = r.failing(m.o.ProbeFailures) && (r.dark || other)
		}
	}
	for h, r := range m.reach {
		if r.dark != was[h] {
			changed = append(changed, h)
		}
	}
	return changed
}

// monitorTargets lists the monitors to probe: those of the listed healthy
// records other than this host, while this host is not a monitor itself;
// vteps are the data plane's, for records without VTEPs (of the earlier
// version). It forgets the monitors no longer listed.
func (m *tracker) monitorTargets(vteps map[string][]netip.Addr) []target {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []target
	listed := map[string]bool{}
	for _, l := range m.records {
		if m.mode == monitoring || !l.ok || !l.rec.Healthy || l.rec.Host == m.o.HostID || listed[l.rec.Host] {
			continue
		}
		addrs := l.rec.VTEPs
		if len(addrs) == 0 {
			addrs = vteps[l.rec.Host]
		}
		if len(addrs) == 0 {
			continue
		}
		listed[l.rec.Host] = true
		out = append(out, target{host: l.rec.Host, vteps: addrs})
	}
	for h := range m.reach {
		if !listed[h] {
			delete(m.reach, h)
		}
	}
	return out
}

// heard applies one round's answers of the monitors, and wakes the run
// loop when one went dark or answers again: the records it follows
// change.
func (m *tracker) heard(targets []target, answered []bool) {
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, tg := range targets {
		r := m.reach[tg.host]
		if r == nil {
			r = &reach{}
			m.reach[tg.host] = r
		}
		if answered[i] {
			r.answered, r.failures, r.last = true, 0, now
		} else {
			r.failures++
		}
	}
	changed := m.judgeDarkLocked()
	for _, h := range changed {
		log := m.o.Log.WithField("monitor", h)
		switch r := m.reach[h]; {
		case r.dark && !r.answered:
			log.Warn("liveness monitor never answered probes and stops with the other one: not following its record")
		case r.dark:
			log.Warn("liveness monitor does not answer probes: not following its record")
		default:
			log.Info("liveness monitor answers probes again")
		}
	}
	if len(changed) > 0 {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// vouchedLocked is until when the records followed (m.follow) were kept:
// if every one of their monitors is dark, the last answer of any dark
// monitor; else now. A monitor that never answered has no last answer,
// and one that went dark a round before the other was left out of the
// records followed since: its last answer still tells (its record was
// followed until then, the other's after).
func (m *tracker) vouchedLocked(now time.Time) time.Time {
	for _, h := range m.follow.monitors {
		if !m.darkLocked(h) {
			return now
		}
	}
	var last time.Time
	for _, r := range m.reach {
		if r.dark {
			last = later(last, r.last)
		}
	}
	if last.IsZero() || last.After(now) {
		return now
	}
	return last
}

// watchRecords is the follower's blocking read of the records, for at
// most wait, cut short when a monitor goes dark or answers again (heard):
// woke tells that it was (then err may be the cancel's).
func (m *tracker) watchRecords(ctx context.Context, wait time.Duration) (kvs []store.KV, next uint64, woke bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	done := make(chan bool)
	go func() {
		select {
		case <-m.wake:
			cancel()
			done <- true
		case <-wctx.Done():
			done <- false
		}
	}()
	kvs, next, err = store.WatchStale(wctx, m.o.Store, keys.Monitors, m.recIndex)
	cancel()
	return kvs, next, <-done, err
}

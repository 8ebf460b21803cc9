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
// A monitor that never answered (ICMP filtered on the underlay) is never
// dark: its record is followed as before, and both monitors switched off
// together cost what they did (the records' sessions, then DeadAfter).
// A monitor whose plugin stops while its host runs on answers probes:
// covered by the other monitor as before, not when both stop together.

// reach is what this host's probes tell of one monitor's underlay.
type reach struct {
	answered bool      // it answered a probe since this host probes it
	failures int       // probe rounds in a row without an answer
	last     time.Time // the end of the last round it answered in
}

// dark tells whether a monitor that answered stopped answering.
func (r *reach) dark(failures int) bool { return r != nil && r.answered && r.failures >= failures }

func (m *tracker) darkLocked(host string) bool { return m.reach[host].dark(m.o.ProbeFailures) }

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
	changed := false
	for i, tg := range targets {
		r := m.reach[tg.host]
		if r == nil {
			r = &reach{}
			m.reach[tg.host] = r
		}
		was := r.dark(m.o.ProbeFailures)
		if answered[i] {
			r.answered, r.failures, r.last = true, 0, now
		} else {
			r.failures++
		}
		switch dark := r.dark(m.o.ProbeFailures); {
		case dark && !was:
			m.o.Log.WithField("monitor", tg.host).Warn("liveness monitor does not answer probes: not following its record")
			changed = true
		case !dark && was:
			m.o.Log.WithField("monitor", tg.host).Info("liveness monitor answers probes again")
			changed = true
		}
	}
	if changed {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// vouchedLocked is until when the records followed (m.follow) were kept:
// if every one of their monitors is dark, the last answer of any of them;
// else now.
func (m *tracker) vouchedLocked(now time.Time) time.Time {
	var last time.Time
	for _, h := range m.follow.monitors {
		r := m.reach[h]
		if !r.dark(m.o.ProbeFailures) {
			return now
		}
		last = later(last, r.last)
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

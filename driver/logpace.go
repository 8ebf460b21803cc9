package driver

import "time"

// Pacing of the change-log rounds (change 20, docs/scaling.md).
//
// Why: change 14 bounded a host's rounds of its one log watch
// (logwatch.go) to one per 500 ms, which bounded the fan-out at 100 hosts
// but made an add reach a member of a 10-host cluster up to half a second
// later than it had to (p99 54 → 628 ms). What a round costs depends on
// how many hosts make rounds: each member of a network wakes on each of
// its changes. So the gap between two rounds that read moved logs grows
// with the hosts of the host's networks, logRoundPerHost each: all members
// of a network together make at most one round per logRoundPerHost (200 a
// second, 600 requests), whatever their number: 50 ms apart at 10 hosts,
// 500 ms at 100 (change 14's pace), 1 s at 200. And it is at least twice the round's own requests' time: a host
// spends at most half its time on rounds, so rounds stretch when Consul is
// slow (loaded) whatever the host knows of its members.
//
// A round that read no log of the host's networks (woken by another
// network's change) waits logRoundIdle, as every round did since change
// 14: hosts on small networks of a large cluster are woken by every
// change of the cluster and must not follow them at their own pace. None
// waits more than logRoundMax. A change after a quiet spell is followed at
// once: the gap counts from the last round's start, and the watch blocked
// meanwhile.
const (
	logRoundPerHost = 5 * time.Millisecond
	logRoundIdle    = 500 * time.Millisecond
	logRoundMax     = 2 * time.Second
)

// logPace is when the host's next log round may begin.
type logPace struct {
	start time.Time     // when the last round began
	gap   time.Duration // from start to the next round
}

// next is the earliest start of the next round.
func (p *logPace) next() time.Time { return p.start.Add(p.gap) }

// done records a round begun at start and ended at end that read moved
// logs (moved) of networks of at most members hosts each.
func (p *logPace) done(start, end time.Time, moved bool, members int) {
	base := logRoundIdle
	if moved {
		base = time.Duration(members) * logRoundPerHost
	}
	p.start, p.gap = start, min(max(base, 2*end.Sub(start)), logRoundMax)
}

// memberCount is the largest number of hosts of a network this host
// follows, as reconcile last read its record (startWatch).
func (d *Driver) memberCount() int {
	n := 0
	for _, w := range d.watching() {
		n = max(n, int(w.members.Load()))
	}
	return n
}

// setMembers records the hosts of n's record for pacing (logPace).
func (w *watcher) setMembers(n *Network) { w.members.Store(int32(len(n.Hosts))) }

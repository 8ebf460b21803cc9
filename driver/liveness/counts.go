package liveness

// Counts are the other hosts this host knows of (from heartbeats or from
// the data plane), by state: Alive (heartbeat moved within DeadAfter),
// Silent (not moved for DeadAfter, still answering or not yet judged) and
// Gone (silent and not answering: entries left out).
type Counts struct {
	Alive, Silent, Gone int
}

// counts returns the current Counts; while the heartbeat watch fails,
// or this host's own heartbeat, nobody is called silent, as in silent().
func (m *tracker) counts() Counts {
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	healthy := m.healthy && m.beating()
	var c Counts
	for host, s := range m.seen {
		switch {
		case host == m.o.HostID:
		case s.gone:
			c.Gone++
		case healthy && m.silentFor(host, s, now) >= m.o.DeadAfter:
			c.Silent++
		default:
			c.Alive++
		}
	}
	return c
}

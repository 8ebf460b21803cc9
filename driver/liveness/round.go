package liveness

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// probeLoop probes silent hosts every ProbeEvery, and tells the data plane
// when the set of gone hosts changes.
func (m *tracker) probeLoop(ctx context.Context) {
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
func (m *tracker) round(ctx context.Context) {
	vteps := m.o.Peers.VTEPs()
	targets := m.silent(vteps)
	monitors := m.monitorTargets(vteps) // reach.go
	answered := make([]bool, len(targets)+len(monitors))
	var wg sync.WaitGroup
	for i, tg := range append(slices.Clip(targets), monitors...) {
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
	m.heard(monitors, answered[len(targets):])
	changed := m.judge(targets, answered[:len(targets)])
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
// fails nobody is silent. vteps are the data plane's.
func (m *tracker) silent(vteps map[string][]netip.Addr) []target {
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
		silent := m.silentFor(host, s, now)
		if host == m.o.HostID || silent < m.o.DeadAfter {
			continue
		}
		out = append(out, target{host: host, vteps: vteps[host], silent: silent})
	}
	return out
}

// answers tells whether any of a host's VTEPs answers a probe. A host
// without a known VTEP has no entries to remove: it counts as answering.
func (m *tracker) answers(ctx context.Context, vteps []netip.Addr) bool {
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
func (m *tracker) judge(targets []target, answered []bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for i, tg := range targets {
		s := m.seen[tg.host]
		if s == nil || m.silentFor(tg.host, s, m.o.Now()) < m.o.DeadAfter {
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
		if s.gone && m.silentFor(host, s, m.o.Now()) < m.o.DeadAfter {
			m.o.Log.WithField("peer", host).Info("gone host heartbeats again: programming its entries")
			s.gone, changed = false, true
		}
	}
	return changed
}

// forget releases hosts silent for ForgetAfter, once each.
func (m *tracker) forget(ctx context.Context, targets []target) {
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

func (m *tracker) forgotten(host string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.seen[host]
	return s != nil && s.forgotten
}

// gone is the set of gone hosts.
func (m *tracker) gone() map[string]bool {
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

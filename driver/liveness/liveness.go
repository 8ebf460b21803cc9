// Package liveness tells which vxnet hosts are alive. Every host writes a
// heartbeat key, alive/<host>, every Interval (on Consul held by a session
// with a 10 s TTL, so a dead host's key goes by itself); every host watches all
// heartbeats and declares a host dead when its key has not changed for
// DeadAfter, as measured by the watcher's own clock (so clock skew between
// hosts does not matter). A dead host is purged once (OnDead) until its
// heartbeat moves again.
//
// A store outage must not make every host look dead: while the watch
// fails, or this host cannot write its own heartbeat, nothing is declared
// dead, and when the watch works again every host gets a fresh DeadAfter
// before it can be. (A watch that times out looks like a quiet store, but
// every live host, this one included, moves alive/ every Interval: it is
// only quiet if this host's own heartbeat goes through.)
package liveness

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
)

const prefix = "alive/"

// Options configure Run.
type Options struct {
	Store     store.Store
	HostID    string
	Interval  time.Duration // heartbeat period
	DeadAfter time.Duration // silence after which a host is dead
	// OnDead purges a dead host; an error makes it retried next round.
	OnDead func(ctx context.Context, host string) error
	Log    *logrus.Entry
	Now    func() time.Time // for tests; time.Now if nil
}

// Heartbeat is the value of alive/<host>.
type Heartbeat struct {
	Beat uint64    `json:"beat"`
	At   time.Time `json:"at"` // informational only
}

// Run heartbeats and watches until ctx ends.
func Run(ctx context.Context, o Options) {
	if o.Now == nil {
		o.Now = time.Now
	}
	beating := make(chan struct{})
	m := &monitor{o: o, seen: map[string]*seen{}}
	go func() {
		defer close(beating)
		heartbeat(ctx, o, &m.lastBeat)
	}()
	m.run(ctx)
	<-beating
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
		err := put(wctx, o.Store, prefix+o.HostID, b)
		cancel()
		if err == nil {
			ok.Store(o.Now().UnixNano())
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			o.Log.WithError(err).Warn("heartbeat failed; other hosts will purge this one if it lasts")
			failing = true
		case err == nil && failing:
			o.Log.Info("heartbeat works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			// A clean stop leaves no key; others purge this host
			// after DeadAfter either way.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := o.Store.Delete(dctx, prefix+o.HostID); err != nil {
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

type seen struct {
	index  uint64
	at     time.Time
	purged bool
}

type monitor struct {
	o        Options
	seen     map[string]*seen
	lastBeat atomic.Int64 // this host's last heartbeat that went through
}

// beating tells whether this host's own heartbeat went through lately.
func (m *monitor) beating() bool {
	return m.o.Now().Sub(time.Unix(0, m.lastBeat.Load())) <= 2*m.o.Interval
}

func (m *monitor) run(ctx context.Context) {
	var index uint64
	healthy := true
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, m.o.Interval)
		kvs, next, err := m.o.Store.Watch(wctx, prefix, index)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if healthy && m.beating() {
				m.check(ctx) // no change for a while: time passes for everyone
				continue
			}
			// The store is not answering (or was not before): a timeout
			// is no news of anybody.
			if healthy {
				m.o.Log.WithError(err).Warn("watching heartbeats timed out and this host's own heartbeat fails; declaring no host dead until it works")
			}
			healthy, index = false, 0
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				if healthy {
					m.o.Log.WithError(err).Warn("watching heartbeats failed; declaring no host dead until it works")
				}
				healthy, index = false, 0
				sleep(ctx, time.Second)
			}
			continue
		}
		if !healthy {
			m.o.Log.Info("watching heartbeats works again")
			m.refresh() // a fresh DeadAfter for everyone
			healthy = true
		}
		m.update(kvs)
		m.check(ctx)
		index = next
	}
}

func (m *monitor) refresh() {
	now := m.o.Now()
	for _, s := range m.seen {
		s.at = now
	}
}

// update notes every heartbeat that moved.
func (m *monitor) update(kvs []store.KV) {
	now := m.o.Now()
	for _, kv := range kvs {
		host := strings.TrimPrefix(kv.Key, prefix)
		s, ok := m.seen[host]
		if !ok {
			m.seen[host] = &seen{index: kv.ModifyIndex, at: now}
			continue
		}
		if kv.ModifyIndex != s.index {
			if s.purged {
				m.o.Log.WithField("peer", host).Info("host is back")
			}
			s.index, s.at, s.purged = kv.ModifyIndex, now, false
		}
	}
}

// check purges hosts silent for DeadAfter.
func (m *monitor) check(ctx context.Context) {
	now := m.o.Now()
	for host, s := range m.seen {
		if host == m.o.HostID || s.purged || now.Sub(s.at) < m.o.DeadAfter {
			continue
		}
		log := m.o.Log.WithFields(logrus.Fields{"peer": host, "silent": now.Sub(s.at).Round(time.Millisecond)})
		if err := m.o.OnDead(ctx, host); err != nil {
			log.WithError(err).Warn("purging dead host failed; retrying")
			continue
		}
		log.Warn("host declared dead and purged")
		s.purged = true
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

package liveness

import (
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// TestOlderHeartbeatIsNoNews: the heartbeats are read stale (change 26),
// so a read can return a copy older than one seen before. An older
// index says nothing of the host: it must not count as a beat (a switched
// off host would never be purged while copies lag), and the next real
// beat after it still counts.
func TestOlderHeartbeatIsNoNews(t *testing.T) {
	c := newClock()
	l := logrus.New()
	l.SetOutput(io.Discard)
	m := &tracker{o: Options{DeadAfter: 10 * time.Second, Now: c.Now, Log: logrus.NewEntry(l)}, seen: map[string]*seen{}}
	beat := func(index uint64) { m.update([]store.KV{{Key: keys.Heartbeat("h2"), ModifyIndex: index}}) }
	beat(100)
	first := c.Now()
	c.advance(8 * time.Second)
	beat(90) // a follower's copy from before
	if got := m.seen["h2"].at; !got.Equal(first) {
		t.Fatalf("an older copy of h2's heartbeat counted as a beat at %s (last beat %s)", got, first)
	}
	c.advance(time.Second)
	beat(101)
	if got := m.seen["h2"].at; !got.Equal(c.Now()) {
		t.Fatalf("h2's next beat after an older copy: last beat %s, want %s", got, c.Now())
	}
}

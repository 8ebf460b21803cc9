package consul_test

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store/consul/consultest"
)

// TestWatchStale: the stale watch blocks and answers as Watch does (on
// one agent, the leader itself, so never "out of touch").
func TestWatchStale(t *testing.T) {
	_, s := openSlow(t, "stale-watch", false)
	ctx := callback(t, 5*time.Second)
	idx, err := s.Put(ctx, "alive/h1", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = s.Put(context.Background(), "alive/h2", []byte("2"))
	}()
	kvs, next, err := s.WatchStale(ctx, "alive/", idx)
	if err != nil || next <= idx || len(kvs) != 2 {
		t.Fatalf("stale watch from %d: %v at %d, %v; want both heartbeats above %d", idx, kvs, next, err, idx)
	}
	if n := s.StaleFallbacks(); n != 0 {
		t.Errorf("%d stale answers of the leader itself dropped, want 0", n)
	}
}

// leaderless answers stale reads as a server that lost its leader does
// (X-Consul-KnownLeader: false).
type leaderless struct{ *consultest.Proxy }

func (l *leaderless) serve(w http.ResponseWriter, r *http.Request) {
	if !r.URL.Query().Has("stale") {
		l.Forward(w, r)
		return
	}
	rec := httptest.NewRecorder()
	l.Forward(rec, r)
	maps.Copy(w.Header(), rec.Header())
	w.Header().Set("X-Consul-KnownLeader", "false")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// A stale answer from a server without a leader is dropped for the
// leader's, and counted (store.StaleFallbacks) for /metrics and the
// simulation.
func TestWatchStaleFallbackCounted(t *testing.T) {
	l := &leaderless{}
	l.Proxy = consultest.NewProxy(t, consulAddr(t), l.serve)
	s := open(t, l.Addr(), testPrefix+"/stale-fallback")
	ctx := callback(t, 5*time.Second)
	if _, err := s.Put(ctx, "alive/h1", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if kvs, _, err := s.WatchStale(ctx, "alive/", 0); err != nil || len(kvs) != 1 {
		t.Fatalf("stale watch: %v, %v; want the heartbeat", kvs, err)
	}
	if n := s.StaleFallbacks(); n != 1 {
		t.Errorf("%d stale answers dropped for the leader's, want 1", n)
	}
}

package liveness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// flaky is a store whose Watch and Put fail while down is set.
// flaky is a store that can go down: Put fails, and Watch waits out the
// caller's deadline, then fails with errDown or, when hangs, with the
// deadline itself, as a Consul call retried to its timeout does.
type flaky struct {
	store.Store
	down  atomic.Bool
	hangs bool
}

var errDown = errors.New("store down")

func (f *flaky) Watch(ctx context.Context, p string, i uint64) ([]store.KV, uint64, error) {
	if f.down.Load() {
		<-ctx.Done()
		if f.hangs {
			return nil, 0, fmt.Errorf("watch %q: %w (%w)", p, ctx.Err(), store.ErrUnavailable)
		}
		return nil, 0, errDown
	}
	return f.Store.Watch(ctx, p, i)
}

func (f *flaky) Put(ctx context.Context, k string, v []byte) (uint64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Store.Put(ctx, k, v)
}

type deaths struct {
	mu   sync.Mutex
	list []string
}

func (d *deaths) add(_ context.Context, h string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = append(d.list, h)
	return nil
}

func (d *deaths) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.list)
}

func start(t *testing.T, s store.Store, host string, dead *deaths) context.CancelFunc {
	l := logrus.New()
	l.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Options{Store: s, HostID: host, Interval: 50 * time.Millisecond, DeadAfter: 400 * time.Millisecond,
			OnDead: dead.add, Log: logrus.NewEntry(l)})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeadHostPurgedOnceAndBack(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := &flaky{Store: b}
	var d1, d2 deaths
	start(t, s, "h1", &d1)
	stop2 := start(t, s, "h2", &d2)
	time.Sleep(600 * time.Millisecond)
	if d1.count() != 0 || d2.count() != 0 {
		t.Fatalf("live hosts declared dead: %v %v", d1.list, d2.list)
	}
	stop2()
	began := time.Now()
	waitFor(t, "h2 declared dead", func() bool { return d1.count() == 1 })
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Fatalf("declared dead after %s, before DeadAfter", took)
	}
	time.Sleep(600 * time.Millisecond)
	if d1.count() != 1 || d1.list[0] != "h2" {
		t.Fatalf("purged more than once: %v", d1.list)
	}
	start(t, s, "h2", &d2) // back: its heartbeat moves, so it is not purged
	time.Sleep(300 * time.Millisecond)
	if d1.count() != 1 {
		t.Fatalf("returning host purged: %v", d1.list)
	}
}

// A store outage longer than DeadAfter declares nobody dead, during it or
// right after the store returns, whether watches fail or time out (a store
// that hangs, as the e2e Consul outage showed, purging every host before).
func TestOutageDeclaresNobodyDead(t *testing.T) {
	for _, hangs := range []bool{false, true} {
		t.Run(fmt.Sprintf("hangs=%v", hangs), func(t *testing.T) {
			b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			s := &flaky{Store: b, hangs: hangs}
			var d1, d2 deaths
			start(t, s, "h1", &d1)
			start(t, s, "h2", &d2)
			time.Sleep(300 * time.Millisecond)
			s.down.Store(true)
			time.Sleep(time.Second)
			s.down.Store(false)
			time.Sleep(700 * time.Millisecond)
			if d1.count() != 0 || d2.count() != 0 {
				t.Fatalf("hosts declared dead over a store outage: %v %v", d1.list, d2.list)
			}
		})
	}
}

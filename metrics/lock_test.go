package metrics

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// sessionStore is a store with sessions, as Consul is to the wrapper.
type sessionStore struct {
	store.Store
	locks int
}

func (s *sessionStore) PutEphemeral(ctx context.Context, key string, value []byte, _ time.Duration) error {
	_, err := s.Put(ctx, key, value)
	return err
}

func (s *sessionStore) Lock(ctx context.Context, key string, value []byte, _ time.Duration) (bool, error) {
	s.locks++
	_, err := s.Put(ctx, key, value)
	return err == nil, err
}

// The timed store keeps the backend's Lock (the liveness monitors'
// election: without it a real plugin, which always runs with metrics,
// would never elect one and every host would read alive/ as before) and
// its blocking read from any server (store.StaleWatcher).
func TestStoreKeepsLockAndStaleWatch(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	backend := &sessionStore{Store: b}
	st := New(time.Now).Store(backend)
	defer st.Close()
	l, ok := st.(store.Locker)
	if !ok {
		t.Fatalf("%T has no Lock (store.Locker)", st)
	}
	if held, err := l.Lock(context.Background(), "liveness/0", []byte("{}"), time.Second); !held || err != nil || backend.locks != 1 {
		t.Fatalf("Lock = %v, %v with %d backend calls; want true, nil, 1", held, err, backend.locks)
	}
	if _, ok := st.(store.StaleWatcher); !ok {
		t.Fatalf("%T has no watch from any server (store.StaleWatcher)", st)
	}
	if _, ok := New(time.Now).Store(b).(store.Locker); ok {
		t.Fatal("the timed store of a store without sessions claims Lock")
	}
}

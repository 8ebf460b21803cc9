package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// losingStore loses every CAS on its key while lose lasts, as if another
// writer had moved the key just before.
type losingStore struct {
	store.Store
	key  string
	lose int
	cas  int
}

func (s *losingStore) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	if key == s.key {
		s.cas++
		if s.lose > 0 {
			s.lose--
			return 0, store.ErrConflict
		}
	}
	return s.Store.CAS(ctx, key, value, index)
}

func openBolt(t *testing.T) store.Store {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type counter struct{ N int }

func increment(cur *counter) (*counter, error) {
	next := counter{}
	if cur != nil {
		next = *cur
	}
	next.N++
	return &next, nil
}

// An update that loses its CAS more often than MaxAttempts, while its
// caller's deadline lasts, gets through: a fixed count of 32 failed
// RequestPools at 200 simulated hosts with seconds of the callback left.
func TestUpdateRetriesWhileTheDeadlineLasts(t *testing.T) {
	s := &losingStore{Store: openBolt(t), key: "k", lose: store.MaxAttempts + 1}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := store.Update(ctx, s, "k", increment)
	if err != nil {
		t.Fatalf("after %d lost CAS with the deadline 30 s away: %v", store.MaxAttempts+1, err)
	}
	if got.N != 1 || s.cas != store.MaxAttempts+2 {
		t.Fatalf("value %d after %d CAS; want 1 after %d", got.N, s.cas, store.MaxAttempts+2)
	}
}

// Without a deadline MaxAttempts bound the update, and the error names
// the key, the attempts and their time, and wraps ErrConflict. A deadline
// ends it too, saying so.
func TestUpdateWithoutDeadlineIsBounded(t *testing.T) {
	s := &losingStore{Store: openBolt(t), key: "k", lose: 1 << 30}
	_, err := store.Update(context.Background(), s, "k", increment)
	if !errors.Is(err, store.ErrConflict) || s.cas != store.MaxAttempts {
		t.Fatalf("without a deadline: err %v after %d CAS; want a conflict after %d", err, s.cas, store.MaxAttempts)
	}
	if want := `update store key "k": lost to concurrent changes 32 times in `; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = store.Update(ctx, s, "k", increment)
	if !errors.Is(err, store.ErrConflict) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "until the call's deadline") {
		t.Fatalf("with a deadline: err %v; want a conflict until the deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a 300 ms deadline ended the retries after %s", took)
	}
}

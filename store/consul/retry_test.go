package consul_test

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul"
	"github.com/vxnet/vxnet/store/consul/consultest"
)

// flakyConsul is a proxy in front of a real Consul that behaves like an
// agent during a leader election: the first failReads reads answer 500,
// and the first write is applied but its answer is lost (500, as an agent
// answers when the server it forwarded to went away mid-call).
type flakyConsul struct {
	failReads atomic.Int32
	loseWrite atomic.Bool
	*consultest.Proxy
}

func (f *flakyConsul) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case consultest.Kind(r) == consultest.KVGet && f.failReads.Add(-1) >= 0:
		http.Error(w, "No cluster leader", http.StatusInternalServerError)
	case consultest.Kind(r) == consultest.Txn && f.loseWrite.CompareAndSwap(true, false):
		f.Lose(r) // applied, answer dropped
		http.Error(w, "rpc error making call: EOF", http.StatusInternalServerError)
	default:
		f.Forward(w, r)
	}
}

// openFlaky opens a store with prefix through a flakyConsul in front of
// the test's Consul; the proxy stops when the test ends.
func openFlaky(t *testing.T, prefix string) (*flakyConsul, *consul.Store) {
	t.Helper()
	f := &flakyConsul{}
	f.Proxy = consultest.NewProxy(t, consulAddr(t), f.serve)
	return f, open(t, f.Addr(), prefix)
}

// TestRetryAcrossLeaderChange: reads retry through 500s, and a create
// whose answer was lost is reported as the success it was, not as a
// conflict with itself or an error that leaves an unknown record behind.
func TestRetryAcrossLeaderChange(t *testing.T) {
	f, s := openFlaky(t, testPrefix+"/retry")
	ctx := t.Context()
	defer func() {
		if err := errors.Join(s.Delete(ctx, "k"), s.Delete(ctx, "other"), s.Close()); err != nil {
			t.Error(err)
		}
	}()

	f.loseWrite.Store(true)
	idx, err := s.CAS(ctx, "k", []byte("v1"), 0)
	if err != nil || idx == 0 {
		t.Fatalf("create whose answer was lost: index %d, %v; want success", idx, err)
	}
	f.failReads.Store(3)
	kv, err := s.Get(ctx, "k")
	if err != nil || string(kv.Value) != "v1" || kv.ModifyIndex != idx {
		t.Fatalf("get through three 500s: %+v, %v; want v1@%d", kv, err, idx)
	}
	// A lost answer must not hide a real conflict: another value is there.
	if _, err := s.Put(ctx, "other", []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CAS(ctx, "other", []byte("mine"), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("create over another value: %v, want a conflict", err)
	}
	// A lost delete-cas answer: the key is gone, which is what was asked.
	cur, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	f.loseWrite.Store(true)
	if err := s.DeleteCAS(ctx, "k", cur.ModifyIndex); err != nil {
		t.Fatalf("delete-cas whose answer was lost: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key still there after delete-cas: %v", err)
	}
}

// TestFailFastWhenDown: a store that keeps failing is down, not electing:
// after a few seconds of failures calls fail at once instead of retrying
// to their timeout, and the first success restores the retries.
func TestFailFastWhenDown(t *testing.T) {
	f, s := openFlaky(t, testPrefix+"/down")
	ctx := t.Context()
	defer s.Close()
	f.failReads.Store(1 << 30)
	start := time.Now()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrUnavailable) || errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("get from a failing agent: %v (kind %s), want ErrUnavailable", err, errkind.Of(err))
	}
	first := time.Since(start)
	start = time.Now()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("second get: %v", err)
	}
	if second := time.Since(start); first < 2*time.Second || second > time.Second {
		t.Fatalf("first get failed after %s (want the retries, ≥2s), second after %s (want at once)", first, second)
	}
	f.failReads.Store(0)
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get with the store back: %v", err)
	}
	f.failReads.Store(2)
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get through two 500s after the store came back: %v", err)
	}
}

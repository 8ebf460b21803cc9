package consul_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul"
	"github.com/vxnet/vxnet/store/consul/consultest"
)

// attempt is one HTTP request's time in these tests (4 s in production).
const attempt = 300 * time.Millisecond

// openSlow opens a store through a consultest.Slow in front of the
// test's Consul, with attempts of attempt; its keys go when the test ends.
func openSlow(t *testing.T, name string, late bool) (*consultest.Slow, *consul.Store) {
	t.Helper()
	slow := consultest.NewSlow(t, consulAddr(t))
	slow.Late(late)
	s := open(t, slow.Addr(), testPrefix+"/"+name)
	consul.SetAttempt(s, attempt)
	t.Cleanup(func() {
		slow.Release() // the held writes first: they may create keys
		ctx := context.Background()
		kvs, _, err := s.List(ctx, "")
		for _, kv := range kvs {
			err = errors.Join(err, s.Delete(ctx, kv.Key))
		}
		if err = errors.Join(err, s.Close()); err != nil {
			t.Error(err)
		}
	})
	return slow, s
}

// callback is a Docker callback's deadline (cmd/vxnet/server: 10 s).
func callback(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestTimedOutWriteRetried: a create-only write and a transaction whose
// first attempt times out on a slow Consul, and is applied there anyway
// (before the retry, or after it), succeed within the caller's deadline,
// once: the retry sends the same write, and a retry that finds it applied
// reads it back as its own.
func TestTimedOutWriteRetried(t *testing.T) {
	for _, late := range []bool{false, true} {
		name := map[bool]string{false: "applied before the retry", true: "applied after the retry"}[late]
		t.Run(name, func(t *testing.T) {
			slow, s := openSlow(t, "slow-write", late)
			ctx := callback(t, 5*time.Second)
			slow.Hold(consultest.Txn, 1)
			idx, err := s.CAS(ctx, "lease", []byte("mine"), 0)
			if err != nil {
				t.Fatalf("create whose first attempt timed out: %v", err)
			}
			kv, err := s.Get(ctx, "lease")
			if err != nil || string(kv.Value) != "mine" || kv.ModifyIndex != idx {
				t.Fatalf("after the create: %+v, %v; want mine@%d", kv, err, idx)
			}
			slow.Hold(consultest.Txn, 1)
			ops := []store.Op{store.Create("ep", []byte("rec")), {Verb: store.VerbCAS, Key: "lease", Value: []byte("mine2"), Index: idx}}
			if err := s.Txn(ctx, ops); err != nil {
				t.Fatalf("transaction whose first attempt timed out: %v", err)
			}
			for k, want := range map[string]string{"ep": "rec", "lease": "mine2"} {
				if kv, err := s.Get(ctx, k); err != nil || string(kv.Value) != want {
					t.Fatalf("%s after the transaction: %+v, %v; want %s", k, kv, err, want)
				}
			}
			// A real conflict stays one: another value is there.
			slow.Hold(consultest.Txn, 1)
			if _, err := s.CAS(ctx, "lease", []byte("other"), 0); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("create over another value, first attempt timed out: %v, want a conflict", err)
			}
		})
	}
}

// TestTimedOutReadRetried: a read whose first attempt times out is
// retried within the caller's deadline.
func TestTimedOutReadRetried(t *testing.T) {
	slow, s := openSlow(t, "slow-read", false)
	ctx := callback(t, 5*time.Second)
	if _, err := s.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	slow.Hold(consultest.KVGet, 1)
	if kv, err := s.Get(ctx, "k"); err != nil || string(kv.Value) != "v" {
		t.Fatalf("get whose first attempt timed out: %+v, %v", kv, err)
	}
}

// TestSlowConsulBoundSpent: a Consul that never answers fails the call by
// the caller's deadline, with an error naming the key and Consul; a
// caller without a deadline (a background loop) gets one attempt's time.
func TestSlowConsulBoundSpent(t *testing.T) {
	slow, s := openSlow(t, "slow-spent", false)
	slow.Hold(consultest.Txn, 1<<20)
	start := time.Now()
	_, err := s.CAS(callback(t, 1500*time.Millisecond), "ipam/addrs/x", []byte("v"), 0)
	took := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), `"ipam/addrs/x"`) ||
		!strings.Contains(err.Error(), slow.Addr()) || !strings.Contains(err.Error(), "attempts") {
		t.Fatalf("create on a Consul that never answers: %v; want ErrUnavailable naming the key, Consul and the attempts", err)
	}
	if took < time.Second || took > 2500*time.Millisecond {
		t.Fatalf("failed after %s, want at the caller's deadline (1.5 s)", took)
	}
	start = time.Now()
	if _, err := s.CAS(context.Background(), "k", []byte("v"), 0); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("create without a deadline: %v", err)
	}
	if took := time.Since(start); took > 2*attempt {
		t.Fatalf("create without a deadline failed after %s, want one attempt (%s)", took, attempt)
	}
}

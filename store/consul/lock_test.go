package consul_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store/keys"
)

// Lock holds a key for the store's session (the one of its heartbeat):
// another store's Lock fails while it is held, the holder rewrites it,
// and when the holder's session ends its key goes and another store takes
// it at once: the session's lock delay is not Consul's default 15 s,
// which would leave a liveness monitor's slot vacant that long.
func TestLockFailover(t *testing.T) {
	addr := consulAddr(t)
	prefix := fmt.Sprintf("vxnet-test-lock-%d", time.Now().UnixNano())
	a, b := open(t, addr, prefix), open(t, addr, prefix)
	defer b.Close()
	ctx := context.Background()
	const ttl = 10 * time.Second
	key := keys.Monitor(0)
	if err := a.PutEphemeral(ctx, keys.Heartbeat("a"), []byte("1"), ttl); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true} {
		if held, err := a.Lock(ctx, key, []byte(fmt.Sprint("a", i)), ttl); err != nil || held != want {
			t.Fatalf("a's Lock %d = %v, %v; want %v", i, held, err, want)
		}
	}
	if held, err := b.Lock(ctx, key, []byte("b"), ttl); err != nil || held {
		t.Fatalf("b's Lock of a key a holds = %v, %v; want false", held, err)
	}
	client, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	kv, _, err := client.KV().Get(prefix+"/"+key, nil)
	if err != nil || kv == nil || string(kv.Value) != "a1" {
		t.Fatalf("key %q: %+v, %v; want a's second value", key, kv, err)
	}
	beat, _, err := client.KV().Get(prefix+"/"+keys.Heartbeat("a"), nil)
	if err != nil || beat == nil || beat.Session != kv.Session {
		t.Fatalf("lock and heartbeat held by different sessions: %+v, %+v, %v", kv, beat, err)
	}
	sess, _, err := client.Session().Info(kv.Session, nil)
	if err != nil || sess == nil {
		t.Fatalf("session %q: %+v, %v", kv.Session, sess, err)
	}
	if sess.LockDelay > time.Second || sess.Behavior != api.SessionBehaviorDelete {
		t.Errorf("session lock delay %s, behaviour %q; want at most 1 s and delete", sess.LockDelay, sess.Behavior)
	}
	// a's session ends as Consul ends an expired one.
	if _, err := client.Session().Destroy(kv.Session, nil); err != nil {
		t.Fatal(err)
	}
	if kv, _, err := client.KV().Get(prefix+"/"+key, nil); err != nil || kv != nil {
		t.Fatalf("key %q after its session ended: %+v, %v; want gone", key, kv, err)
	}
	began := time.Now()
	for {
		held, err := b.Lock(ctx, key, []byte("b"), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if held {
			break
		}
		if time.Since(began) > 5*time.Second {
			t.Fatalf("b could not take the key within %s of a's session ending", time.Since(began))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("b took the key %s after a's session ended", time.Since(began).Round(time.Millisecond))
	if held, err := a.Lock(ctx, key, []byte("a2"), ttl); err != nil || held {
		t.Fatalf("a's Lock with a new session of a key b holds = %v, %v; want false", held, err)
	}
	a.Close()
}

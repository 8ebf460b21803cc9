package consul_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// An ephemeral key is held by the store's session: renewing keeps it, and
// Close (which destroys the session) removes it.
func TestPutEphemeral(t *testing.T) {
	addr := consulAddr(t)
	prefix := fmt.Sprintf("vxnet-test-eph-%d", time.Now().UnixNano())
	s := open(t, addr, prefix)
	watcher := open(t, addr, prefix)
	defer watcher.Close()
	ctx := context.Background()
	for i := range 3 {
		if err := s.PutEphemeral(ctx, keys.Heartbeat("h1"), []byte(fmt.Sprint(i)), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := watcher.Get(ctx, keys.Heartbeat("h1"))
	if err != nil || string(kv.Value) != "2" {
		t.Fatalf("Get = %q, %v", kv.Value, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := watcher.Get(ctx, keys.Heartbeat("h1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ephemeral key survived its session: %v", err)
	}
}

// A heartbeat renews its session once a third of the TTL has passed, not
// on every write (each renewal is a request and a Raft entry: half of a
// heartbeat's requests before); a session that expired between renewals
// (destroyed here behind the store's back, as Consul does after the TTL)
// is made anew by the next write, which holds the key again.
func TestPutEphemeralRenewsEveryThirdTTL(t *testing.T) {
	addr := consulAddr(t)
	prefix := fmt.Sprintf("vxnet-test-renew-%d", time.Now().UnixNano())
	c, s := openCounting(t, addr, prefix)
	defer s.Close()
	ctx := context.Background()
	const ttl = 10 * time.Second // Consul's least session TTL
	key := keys.Heartbeat("h1")
	// The store counts the session's age from its create's answer, which
	// a loaded machine gives late (held back here): the third of the TTL
	// is waited from the first write's return. Waited from before it was
	// sent, with 100 ms to spare, a create answered more than 100 ms late
	// left the write after it unrenewed (0 renewals: the flake seen once
	// under load, and every run with this hold).
	c.hold("PUT /v1/session/create", 300*time.Millisecond)
	start := time.Now()
	var created time.Time
	for i := range 5 {
		if err := s.PutEphemeral(ctx, key, []byte(fmt.Sprint(i)), ttl); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			created = time.Now()
		}
	}
	if time.Since(start) >= ttl/3 {
		t.Skip("5 writes took over a third of the TTL: the machine is too slow to tell")
	}
	if got, want := c.count("PUT /v1/session/renew")+c.count("PUT /v1/session/create"), 1; got != want {
		t.Errorf("5 writes within a third of the TTL: %d session renewals and creates, want %d (all requests: %v)", got, want, c.n)
	}
	if got := c.count("PUT /v1/kv"); got != 5 {
		t.Errorf("5 writes: %d acquires, want 5", got)
	}
	time.Sleep(time.Until(created.Add(ttl/3 + 100*time.Millisecond)))
	c.reset()
	if err := s.PutEphemeral(ctx, key, []byte("5"), ttl); err != nil {
		t.Fatal(err)
	}
	if got := c.count("PUT /v1/session/renew"); got != 1 {
		t.Errorf("a write after a third of the TTL: %d renewals, want 1 (all requests: %v)", got, c.n)
	}

	// The session expires behind the store's back.
	client, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	held, _, err := client.KV().Get(prefix+"/"+key, nil)
	if err != nil || held == nil || held.Session == "" {
		t.Fatalf("key %q is not held by a session: %+v, %v", key, held, err)
	}
	if _, err := client.Session().Destroy(held.Session, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // past the session's lock delay (1 ms)
	if err := s.PutEphemeral(ctx, key, []byte("6"), ttl); err != nil {
		t.Fatalf("write after the session expired: %v", err)
	}
	again, _, err := client.KV().Get(prefix+"/"+key, nil)
	switch {
	case err != nil || again == nil:
		t.Fatalf("key %q after the session expired: %+v, %v", key, again, err)
	case string(again.Value) != "6" || again.Session == "" || again.Session == held.Session:
		t.Fatalf("key %q after the session expired: value %q session %q (old %q); want 6, held by a new session", key, again.Value, again.Session, held.Session)
	}
}

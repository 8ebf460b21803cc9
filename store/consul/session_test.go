package consul_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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

package driver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// heldMACStore answers the first lose creates of key as if another
// endpoint held it, released before the read that follows.
type heldMACStore struct {
	store.Store
	key     string
	lose    int
	creates int
}

func (s *heldMACStore) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	if key == s.key && index == 0 {
		s.creates++
		if s.lose > 0 {
			s.lose--
			return 0, store.ErrConflict
		}
	}
	return s.Store.CAS(ctx, key, value, index)
}

// A MAC reservation that keeps finding the key held by endpoints that
// release it tries again while its callback's deadline lasts (it gave up
// after 4 creates before); without a deadline store.MaxAttempts bound it
// and the error names the key and the attempts.
func TestMACReservationRetriesWhileTheDeadlineLasts(t *testing.T) {
	const mac = "02:00:00:00:00:09"
	base := newEnv(t).store
	key := keys.MAC("198.19.1.0_24", mac)
	s := &heldMACStore{Store: base, key: key, lose: 10}
	e := newHost(t, s, "h1", "198.18.0.11")
	ep := &Endpoint{ID: ep1, Network: "198.19.1.0_24", MAC: mac}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.d.takeMAC(ctx, ep); err != nil {
		t.Fatalf("after 10 creates lost to holders that went: %v", err)
	}
	if rec, _, err := store.GetJSON[MACRecord](ctx, base, key); err != nil || rec.Endpoint != ep1 || s.creates != 11 {
		t.Fatalf("MAC key %+v (%v) after %d creates; want it held by %s after 11", rec, err, s.creates, ep1)
	}
	if err := base.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}

	s.lose, s.creates = 1<<30, 0
	err := e.d.takeMAC(context.Background(), ep)
	if !errors.Is(err, store.ErrConflict) || s.creates != store.MaxAttempts {
		t.Fatalf("without a deadline: err %v after %d creates; want a conflict after %d", err, s.creates, store.MaxAttempts)
	}
	if want := `reserve MAC address ` + mac + ` ("` + key + `"): lost to concurrent changes 32 times in `; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

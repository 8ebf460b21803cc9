package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// session is the Consul session ephemeral keys are held with.
type session struct {
	mu sync.Mutex
	id string
}

// PutEphemeral writes key held by this store's session (TTL ttl, behaviour
// delete): if the process stops renewing it, Consul deletes the key after
// the TTL (Consul allows up to twice the TTL). Each call renews the
// session, creating a new one when Consul no longer knows it. If the key
// cannot be acquired (another session holds it, or Consul's lock delay
// after a lost session), the value is still written without a session, so
// readers see it move.
func (s *Store) PutEphemeral(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.checkKey(ctx, "put ephemeral", key); err != nil {
		return err
	}
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	cctx, done := s.callCtx(ctx, callTimeout)
	defer done()
	w := (&api.WriteOptions{}).WithContext(cctx)
	if err := s.renew(w, key, ttl); err != nil {
		return s.fail(ctx, "put ephemeral", key, err)
	}
	ok, _, err := s.kv.Acquire(&api.KVPair{Key: s.path(key), Value: value, Session: s.sess.id}, w)
	if err != nil {
		return s.fail(ctx, "put ephemeral", key, err)
	}
	if !ok {
		if _, err := s.kv.Put(&api.KVPair{Key: s.path(key), Value: value}, w); err != nil {
			return s.fail(ctx, "put ephemeral", key, err)
		}
		return fmt.Errorf("put ephemeral %q: written without session %s: the key could not be acquired", key, s.sess.id)
	}
	return nil
}

// renew renews the session, or creates one if there is none (any more).
func (s *Store) renew(w *api.WriteOptions, key string, ttl time.Duration) error {
	if s.sess.id != "" {
		entry, _, err := s.sessions.Renew(s.sess.id, w)
		if err != nil && !isSessionGone(err) {
			return err
		}
		if err == nil && entry != nil {
			return nil
		}
		s.sess.id = ""
	}
	id, _, err := s.sessions.Create(&api.SessionEntry{
		Name: "vxnet " + key, TTL: ttl.String(), Behavior: api.SessionBehaviorDelete,
		LockDelay: time.Millisecond, // a returning host re-acquires its key at once
	}, w)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	s.sess.id = id
	return nil
}

// isSessionGone tells a renewal of an expired session (404) from a failure.
func isSessionGone(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == 404
}

// destroySession ends the session at Close, so its keys go at once.
func (s *Store) destroySession() {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	if s.sess.id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = s.sessions.Destroy(s.sess.id, (&api.WriteOptions{}).WithContext(ctx))
	s.sess.id = ""
}

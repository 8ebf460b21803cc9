package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// session is the Consul session ephemeral keys are held with.
type session struct {
	mu      sync.Mutex
	id      string
	renewed time.Time // when id was created or last renewed
}

// PutEphemeral writes key held by this store's session (TTL ttl, behaviour
// delete): if the process stops renewing it, Consul deletes the key after
// the TTL (Consul allows up to twice the TTL). The session is renewed
// only once a third of ttl has passed since it was created or renewed,
// not on every call, and created anew when Consul no longer knows it (a
// renewal answers 404, an acquire "invalid session": it expired, its keys
// were deleted). If the key cannot be acquired (another session holds
// it, or Consul's lock delay after a lost session), the value is still
// written without a session, so readers see it move.
//
// Why not every call: each renewal is an HTTP request and a Raft entry,
// and the heartbeat called this every 2 s on every host: half of the
// heartbeat's requests, at 200 simulated hosts among the largest of the
// Consul servers' loads (docs/scaling.md, change 15). A session renewed
// every TTL/3 still has two renewals' margin before it expires.
func (s *Store) PutEphemeral(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	ok, err := s.acquire(ctx, "put ephemeral", key, value, ttl, func(w *api.WriteOptions) error {
		_, err := s.kv.Put(&api.KVPair{Key: s.path(key), Value: value}, w)
		return err
	})
	if err == nil && !ok {
		err = fmt.Errorf("put ephemeral %q: written without session %s: the key could not be acquired", key, s.sess.id)
	}
	return err
}

// Lock writes key held by this store's session, the one of its ephemeral
// keys (store.Locker), if no other session holds it, and tells whether
// this session holds it. Consul lets the holder rewrite the value with
// another acquire. The session's lock delay is a millisecond (renew): a
// key whose holder's session went can be taken at once, not after
// Consul's default 15 s.
func (s *Store) Lock(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	return s.acquire(ctx, "lock", key, value, ttl, nil)
}

// acquire writes key with the session, renewed or created as needed, and
// tells whether the session holds it; if another session holds it,
// fallback (if set) writes it otherwise. The caller holds s.sess.mu.
func (s *Store) acquire(ctx context.Context, op, key string, value []byte, ttl time.Duration, fallback func(*api.WriteOptions) error) (bool, error) {
	if err := s.checkKey(ctx, op, key); err != nil {
		return false, err
	}
	cctx, done := s.callCtx(ctx, s.attempt)
	defer done()
	w := (&api.WriteOptions{}).WithContext(cctx)
	if err := s.renew(w, key, ttl, false); err != nil {
		return false, s.fail(ctx, op, key, err)
	}
	pair := &api.KVPair{Key: s.path(key), Value: value, Session: s.sess.id}
	ok, _, err := s.kv.Acquire(pair, w)
	if isSessionInvalid(err) {
		// Expired between renewals (this host was cut off for the TTL):
		// a new session, and the key again.
		if err = s.renew(w, key, ttl, true); err == nil {
			pair.Session = s.sess.id
			ok, _, err = s.kv.Acquire(pair, w)
		}
	}
	if err == nil && !ok && fallback != nil {
		err = fallback(w)
	}
	if err != nil {
		return false, s.fail(ctx, op, key, err)
	}
	return ok, nil
}

// renew renews the session when a third of ttl has passed since it was
// created or renewed, and creates one if there is none (any more); gone
// says Consul no longer knows it.
func (s *Store) renew(w *api.WriteOptions, key string, ttl time.Duration, gone bool) error {
	if gone {
		s.sess.id = ""
	}
	if s.sess.id != "" && time.Since(s.sess.renewed) < ttl/3 {
		return nil
	}
	if s.sess.id != "" {
		entry, _, err := s.sessions.Renew(s.sess.id, w)
		if err != nil && !isSessionGone(err) {
			return err
		}
		if err == nil && entry != nil {
			s.sess.renewed = time.Now()
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
	s.sess.id, s.sess.renewed = id, time.Now()
	return nil
}

// isSessionGone tells a renewal of an expired session (404) from a failure.
func isSessionGone(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == 404
}

// isSessionInvalid tells an acquire with a session Consul no longer knows
// (its state store answers "invalid session", as a 500) from a failure.
func isSessionInvalid(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && strings.Contains(se.Body, "invalid session")
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

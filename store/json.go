package store

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// GetJSON reads key and decodes it into a T. A missing key wraps ErrNotFound.
func GetJSON[T any](ctx context.Context, s Store, key string) (*T, uint64, error) {
	kv, err := s.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	v := new(T)
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return nil, 0, fmt.Errorf("decode store key %q: %w", key, err)
	}
	return v, kv.ModifyIndex, nil
}

// CreateJSON writes v under key only if the key does not exist yet; an
// existing key wraps ErrConflict.
func CreateJSON(ctx context.Context, s Store, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode store key %q: %w", key, err)
	}
	_, err = s.CAS(ctx, key, b, 0)
	return err
}

// PutJSON writes v under key unconditionally.
func PutJSON(ctx context.Context, s Store, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode store key %q: %w", key, err)
	}
	_, err = s.Put(ctx, key, b)
	return err
}

// Update is a read-modify-write of one JSON value with check-and-set. fn
// gets the current value (nil when the key is absent) and returns the new
// one, or nil to delete the key, or an error to abort without writing. fn
// may run several times when other writers interfere, so it must not have
// side effects. A lost CAS is retried (Retry): while ctx's deadline lasts,
// MaxAttempts times without one. Update returns what fn last returned.
func Update[T any](ctx context.Context, s Store, key string, fn func(cur *T) (*T, error)) (*T, error) {
	next, _, err := UpdateHeld(ctx, s, key, nil, fn)
	return next, err
}

// Held is a record as its caller last read or wrote it: its value and
// ModifyIndex (UpdateHeld).
type Held[T any] struct {
	Value *T
	Index uint64
}

// UpdateHeld is Update whose first attempt starts from h, the record as
// the caller last read or wrote it, instead of a read (nil h: a read, as
// Update): the CAS on h's index fails if the record moved since, and the
// attempts after read it. It returns what fn last returned and the
// index it was written at (0 when deleted or nothing written). An error
// of fn on h is returned as on a read: fn must not fail on a held value
// where a newer one could pass.
//
// Why: a network create (RequestPool, the gateway's RequestAddress,
// SetupDone) updated its pool record three times, each after a read of
// it, and read it twice more; every join of every host did so, on a
// record that grows with the hosts (docs/scaling.md, change 22).
func UpdateHeld[T any](ctx context.Context, s Store, key string, h *Held[T], fn func(cur *T) (*T, error)) (*T, uint64, error) {
	r := Retrying(ctx)
	for r.Next() {
		held := r.Attempts() == 1 && h != nil
		var (
			cur *T
			idx uint64
			err error
		)
		if held {
			cur, idx = h.Value, h.Index
		} else if cur, idx, err = GetJSON[T](ctx, s, key); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, 0, err
		}
		next, err := fn(cur)
		if err != nil {
			return nil, 0, err
		}
		var written uint64
		switch {
		case next == nil && cur == nil:
			return nil, 0, nil
		case next == nil:
			err = s.DeleteCAS(ctx, key, idx)
		default:
			var b []byte
			if b, err = json.Marshal(next); err != nil {
				return nil, 0, fmt.Errorf("encode store key %q: %w", key, err)
			}
			written, err = s.CAS(ctx, key, b, idx)
		}
		if err == nil {
			return next, written, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, 0, err
		}
		if held {
			r.Now() // the held record moved: read it, without a pause
		}
	}
	return nil, 0, r.Err(fmt.Sprintf("update store key %q", key))
}

// CASJSON writes v under key if the key's ModifyIndex is still idx.
func CASJSON(ctx context.Context, s Store, key string, v any, idx uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode store key %q: %w", key, err)
	}
	_, err = s.CAS(ctx, key, b, idx)
	return err
}

// Decode decodes a listed value, naming its key on failure.
func Decode(kv KV, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("decode store key %q: %w", kv.Key, err)
	}
	return nil
}

// Nonce returns 16 random hex characters, fresh for every call. A value
// written create-only carries one, so a writer whose answer was lost (a
// Consul leader election) recognises its own write by equal bytes, and
// never another request's write of the same content.
func Nonce() string {
	var b [8]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

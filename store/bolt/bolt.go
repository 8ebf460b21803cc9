// Package bolt is the single-host store.Store backend: one bbolt file.
//
// Design note: the file holds two buckets. "kv" maps each key to its value,
// prefixed by the 8-byte big-endian ModifyIndex of its last write. "meta"
// holds the global index: every write that changes something (Put, CAS,
// Delete or DeleteCAS of an existing key) increments it in the same
// transaction and stamps the key with it, so indexes are unique, strictly
// increasing and survive a restart. List returns the global index read in
// the same transaction as the keys.
//
// Watch is served in process: after every commit the store records
// (index, key) in a bounded history and wakes all watchers by closing a
// channel and replacing it. A watcher returns when the history shows a
// change under its prefix after its index. Changes from before Open, or
// dropped from the history, are not known, so a Watch from such an old
// index (or from 0, or from an index above any seen) returns at once; the
// caller re-lists, which is always safe.
//
// bbolt allows one process per file (flock), so Open waits lockTimeout for
// the lock and then fails naming the file: another vxnet holds it. Every
// call checks its context and the closed flag first; bbolt transactions are
// short, so a call does not outlive its context by more than one commit.
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	// lockTimeout is how long Open waits for another process's file lock.
	lockTimeout = 2 * time.Second
	// historySize bounds the changes remembered for Watch.
	historySize = 4096

	bucketKV   = "kv"
	bucketMeta = "meta"
	keyIndex   = "index"
)

var errClosed = errors.New("store is closed")

// Store is a store.Store in one bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	path string

	mu      sync.Mutex
	closed  bool
	done    chan struct{} // closed by Close
	changed chan struct{} // closed and replaced after every commit
	history []change      // recent commits, roughly in index order
	floor   uint64        // every change above floor is in history
	last    uint64        // largest index in history (or at Open)
}

// change is one committed write or delete.
type change struct {
	index uint64
	key   string
}

// Open opens (creating if needed) the store file at path. Its directory is
// created with mode 0700, the file with 0600.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %q: file still locked after %v (is another vxnet running?): %w",
			path, lockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	var index uint64
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte(bucketKV)); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		index, err = readIndex(meta)
		return err
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open store %q: %w", path, err), db.Close())
	}
	return &Store{
		db:      db,
		path:    path,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		floor:   index,
		last:    index,
	}, nil
}

// Close closes the file and wakes blocked Watch calls, which then fail.
// Calls after Close, including Close, fail.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("close store %q: %w", s.path, errClosed)
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %q: %w", s.path, err)
	}
	return nil
}

// check fails op on subject if ctx has ended or the store is closed.
func (s *Store) check(ctx context.Context, op, subject string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %q: %w", op, subject, err)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("%s %q: store %q: %w", op, subject, s.path, errClosed)
	}
	return nil
}

// checkKey is check plus the key syntax: non-empty, no leading slash.
func (s *Store) checkKey(ctx context.Context, op, key string) error {
	if err := s.check(ctx, op, key); err != nil {
		return err
	}
	if key == "" || strings.HasPrefix(key, "/") {
		return fmt.Errorf("%s %q: key must be a non-empty path without a leading slash", op, key)
	}
	return nil
}

// record notes a committed change and wakes every watcher.
func (s *Store) record(index uint64, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = append(s.history, change{index, key})
	s.last = max(s.last, index)
	if len(s.history) > historySize {
		drop := len(s.history) / 2
		for _, c := range s.history[:drop] {
			s.floor = max(s.floor, c.index)
		}
		s.history = append([]change(nil), s.history[drop:]...)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// readIndex returns the global index from the meta bucket (0 if unset).
func readIndex(meta *bbolt.Bucket) (uint64, error) {
	raw := meta.Get([]byte(keyIndex))
	switch len(raw) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(raw), nil
	default:
		return 0, fmt.Errorf("corrupt global index: %d bytes", len(raw))
	}
}

// encodeIndex is the 8-byte big-endian form of index.
func encodeIndex(index uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, index)
}

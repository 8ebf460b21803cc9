package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/storetest"
	berrors "go.etcd.io/bbolt/errors"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "vxnet.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen: data survives a restart and indexes keep increasing.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "dir", "vxnet.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 3 {
		if last, err = s.Put(ctx, "k/"+strconv.Itoa(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "k/2"); err != nil {
		t.Fatal(err)
	}
	want, listIdx, err := s.List(ctx, "k/")
	if err != nil {
		t.Fatal(err)
	}
	if listIdx <= last {
		t.Errorf("List index %d after a Delete, not above the last Put's %d", listIdx, last)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	got, idx, err := s.List(ctx, "k/")
	if err != nil {
		t.Fatal(err)
	}
	if idx != listIdx || len(got) != len(want) {
		t.Fatalf("after reopen List = %d keys at %d, want %d keys at %d", len(got), idx, len(want), listIdx)
	}
	for i := range got {
		if got[i].Key != want[i].Key || got[i].ModifyIndex != want[i].ModifyIndex {
			t.Errorf("after reopen %q@%d, want %q@%d", got[i].Key, got[i].ModifyIndex, want[i].Key, want[i].ModifyIndex)
		}
	}
	next, err := s.Put(ctx, "other", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if next <= listIdx {
		t.Errorf("Put after reopen got index %d, not above %d", next, listIdx)
	}
	// A watcher from before the restart cannot know what changed: it
	// returns at once and re-lists.
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, _, err := s.Watch(wctx, "k/", last); err != nil {
		t.Errorf("Watch from an index before reopen: %v", err)
	}
}

// TestPermissions: the directory is created 0700, the file 0600.
func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "vxnet.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&^want != 0 {
			t.Errorf("%q has mode %v, want at most %v", p, perm, want)
		}
	}
}

// TestLocked: a second Open of a file in use fails after the lock timeout,
// naming the file and the likely cause.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxnet.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	s2, err := bolt.Open(path)
	if err == nil {
		t.Fatal(errors.Join(errors.New("second Open of a locked file succeeded"), s2.Close()))
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("error %q does not wrap %v", err, berrors.ErrTimeout)
	}
	for _, part := range []string{strconv.Quote(path), "another vxnet running"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %s", err, part)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("second Open took %v to fail", took)
	}
}

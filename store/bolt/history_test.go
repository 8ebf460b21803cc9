package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestHistoryTrim: once changes fall out of the bounded history, a Watch
// from before them returns at once, while a Watch from the current index
// still blocks for writes outside its prefix.
func TestHistoryTrim(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "vxnet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	first, err := s.Put(ctx, "w/k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range historySize + 10 {
		if _, err := s.Put(ctx, "other/"+strconv.Itoa(i%7), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	floor, n := s.floor, len(s.history)
	s.mu.Unlock()
	if floor <= first || n > historySize {
		t.Fatalf("history not trimmed: floor %d, %d entries", floor, n)
	}

	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, _, err := s.Watch(wctx, "w/", first); err != nil {
		t.Errorf("Watch from a trimmed index: %v", err)
	}
	_, now, err := s.List(ctx, "w/")
	if err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer qcancel()
	if _, _, err := s.Watch(qctx, "w/", now); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch from the current index: %v, want deadline exceeded", err)
	}
}

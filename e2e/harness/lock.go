package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// acquireLock takes an exclusive flock on path, waiting up to wait. flock
// belongs to the open file, so two clusters in one process exclude each
// other as two test binaries do; the kernel drops it when a killed run
// dies.
func acquireLock(t testing.TB, path string, wait time.Duration) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create lock dir for %q: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %q: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %q: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %q: another e2e cluster still running after %s", path, wait)
		}
		if !logged {
			t.Logf("harness: waiting for another e2e cluster to finish (lock %s)", path)
			logged = true
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// lockWaitFromEnv is how long a cluster waits for the lock: lockWait, or
// VXE2E_LOCK_WAIT (a Go duration) for a machine whose engineers run long
// e2e clusters and measurements side by side.
func lockWaitFromEnv() (time.Duration, error) {
	v := os.Getenv("VXE2E_LOCK_WAIT")
	if v == "" {
		return lockWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("VXE2E_LOCK_WAIT=%q: want a positive Go duration such as 30m", v)
	}
	return d, nil
}

// releaseLock drops the lock; closing the file is enough.
func releaseLock(f *os.File) {
	if f != nil {
		f.Close()
	}
}

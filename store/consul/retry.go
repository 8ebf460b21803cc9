package consul

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/internal/pause"
)

// Retries. A Consul agent answers 500 while its cluster has no leader
// (an election after the leader died) and while it still routes to a
// server that is gone ("failed to get conn"), for a few seconds; the
// transport can fail the same way. Every call is retried on such errors
// with a growing pause until its own timeout (callTimeout), so a leader
// change costs a callback a second or two instead of an error. 4xx
// answers (bad request, ACL) are final.
//
// A store that has been failing for outageAfter, with no call succeeding
// in between, is down rather than electing: calls then fail at their
// first error, so every Docker callback fails in milliseconds instead of
// queueing behind retries; the first call that succeeds ends that.
//
// A write whose answer was lost may still have been applied. A retry of
// it is then rolled back (its CAS index no longer matches); apply reads
// the key and takes a key that already holds what the write wanted as
// the write's success, so a lost answer never turns into a record that
// exists although the caller was told it does not.
const (
	retryFirst  = 25 * time.Millisecond
	retryMax    = 500 * time.Millisecond
	outageAfter = 3 * time.Second
)

// retry calls fn until it succeeds, fails for good, or ctx ends; it
// reports whether an attempt that may have reached Consul failed
// (ambiguous) before the last one.
func (s *Store) retry(ctx context.Context, fn func() error) (ambiguous bool, err error) {
	wait := retryFirst
	for {
		err = fn()
		if err == nil {
			s.failingSince.Store(0)
			return ambiguous, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return ambiguous, err
		}
		now := time.Now().UnixNano()
		s.failingSince.CompareAndSwap(0, now)
		if since := s.failingSince.Load(); since != 0 && time.Duration(now-since) > outageAfter {
			return ambiguous, err // down, not electing: fail fast
		}
		ambiguous = true
		if !pause.For(ctx, wait) {
			return ambiguous, err
		}
		wait = min(2*wait, retryMax)
	}
}

// retryable tells a transient failure (5xx, transport) from a final one.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == http.StatusTooManyRequests
	}
	// The transaction endpoint's refusals are plain errors carrying only
	// Consul's message: ACL ones are final too.
	msg := err.Error()
	return !strings.Contains(msg, "ACL not found") && !strings.Contains(msg, "Permission denied")
}

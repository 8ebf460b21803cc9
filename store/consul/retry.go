package consul

import (
	"context"
	"errors"
	"fmt"
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
// with a growing pause; 4xx answers (bad request, ACL) are final.
//
// Each attempt (one HTTP request) has its own deadline (Store.attempt,
// callTimeout). A call runs its attempts within its bound: the caller's
// deadline when it has one (a Docker callback's, 25 s in cmd/vxnet/server,
// below Docker's own 30 s), at most maxCallBound; one attempt's time when
// it has none (the background loops, which retry on their own schedule).
// An attempt that ran out of its time on a slow-but-working Consul is
// retried like a 500 while the bound lasts: at 200 simulated hosts a
// lease's transaction took longer than 4 s on saturated servers, and the
// container start failed although Docker would still have waited
// (docs/scaling.md, change 25).
//
// A store that has been failing for outageAfter, with no call succeeding
// in between, is down rather than electing: calls then fail at their
// first error, so every Docker callback fails in milliseconds instead of
// queueing behind retries; the first call that succeeds ends that.
//
// A write whose answer was lost, or whose attempt timed out, may still
// have been applied, or be applied later. A retry sends the very same
// request (same keys, same values, same CAS indexes), so at most one of
// the attempts is applied: a retry after an earlier attempt was applied is
// rolled back (its CAS index no longer matches), and an earlier attempt
// arriving after the retry was applied is rolled back the same way. apply
// then reads the key and takes a key that already holds what the write
// wanted as the write's success, so a lost answer never turns into a
// record that exists although the caller was told it does not. (A record
// holds a nonce where two writers could mean different things by the same
// value, e.g. an address lease.) What remains: when the bound is spent
// with the last attempt unanswered, that attempt may still be applied
// after the caller was told the call failed.
const (
	retryFirst   = 25 * time.Millisecond
	retryMax     = 500 * time.Millisecond
	outageAfter  = 3 * time.Second
	maxCallBound = 30 * time.Second
)

// retry runs fn, one attempt per call with the attempt's ctx, until it
// succeeds, fails for good, or the call's bound (see above) ends. timeout
// is one attempt's time. It reports whether an attempt that may have
// reached Consul failed (ambiguous) before the last one.
func (s *Store) retry(ctx context.Context, timeout time.Duration, fn func(actx context.Context) error) (ambiguous bool, err error) {
	bctx, done := s.bound(ctx, timeout)
	defer done()
	wait, start := retryFirst, time.Now()
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(bctx, timeout)
		err = fn(actx)
		timedOut := err != nil && actx.Err() != nil && bctx.Err() == nil
		cancel()
		if err == nil {
			s.failingSince.Store(0)
			return ambiguous, nil
		}
		if bctx.Err() != nil || !(timedOut || retryable(err)) {
			return ambiguous, spent(n, start, err)
		}
		now := time.Now().UnixNano()
		s.failingSince.CompareAndSwap(0, now)
		if since := s.failingSince.Load(); since != 0 && time.Duration(now-since) > outageAfter {
			return ambiguous, spent(n, start, err) // down, not electing: fail fast
		}
		ambiguous = true
		if !pause.For(bctx, wait) {
			return ambiguous, spent(n, start, err)
		}
		wait = min(2*wait, retryMax)
	}
}

// bound is the ctx a call's attempts run in: the caller's deadline, at
// most maxCallBound, or one attempt's time when the caller has none; and
// the store's lifetime.
func (s *Store) bound(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return s.callCtx(ctx, max(maxCallBound, timeout))
	}
	return s.callCtx(ctx, timeout)
}

// spent says how many attempts a call made before err ended it.
func spent(n int, start time.Time, err error) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("%d attempts in %s: %w", n, time.Since(start).Round(time.Millisecond), err)
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
	// Consul's message: ACL ones and a 413 are final too.
	msg := err.Error()
	return !strings.Contains(msg, "ACL not found") && !strings.Contains(msg, "Permission denied") && !isTooManyOps(err)
}

package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vxnet/vxnet/internal/pause"
)

// Retrying a lost compare-and-swap. Every read-modify-write loop of vxnet
// (a record's update, a MAC's or a lease's create-only key, a network's
// join, the subnet claims, the change logs) runs its attempts through one
// Retry: after a lost CAS it pauses a jittered, growing time and tries
// again while its ctx's deadline lasts, or MaxAttempts times when the ctx
// has none (the background loops, which retry on their own schedule).
//
// Why the deadline and not a count: a Docker callback has seconds (its
// bound in cmd/vxnet/server), and at 100 and 200 simulated hosts writers
// of one key lost more often than any fixed count allowed while their
// callback still had time; each attempt's random pause makes one of the
// contenders win, so trying until the deadline ends a contention that
// ends at all, and a livelock still ends at the deadline, with an error
// naming the key, the attempts and the time they took.

// MaxAttempts bounds a Retry whose ctx has no deadline.
const MaxAttempts = 32

// Retry paces the attempts of one CAS loop:
//
//	r := store.Retrying(ctx)
//	for r.Next() {
//		... read, change, CAS; return on success or a final error ...
//	}
//	return r.Err(fmt.Sprintf("update %q", key))
type Retry struct {
	ctx     context.Context
	start   time.Time
	n       int  // attempts begun
	counted int  // of them, counted against MaxAttempts
	now     bool // the next attempt starts without a pause
	free    bool // and is not counted
}

// Retrying starts the attempts of a CAS loop under ctx.
func Retrying(ctx context.Context) *Retry {
	return &Retry{ctx: ctx, start: time.Now(), now: true}
}

// Next pauses before every attempt but the first (BackoffPause) and
// reports whether the attempt may run: the ctx is live and, without a
// deadline, fewer than MaxAttempts ran.
func (r *Retry) Next() bool {
	if !r.now && !pause.For(r.ctx, BackoffPause(r.counted-1)) {
		return false
	}
	if r.ctx.Err() != nil {
		return false
	}
	if !r.free {
		if _, ok := r.ctx.Deadline(); !ok && r.counted >= MaxAttempts {
			return false
		}
		r.counted++
	}
	r.n++
	r.now, r.free = false, false
	return true
}

// Now makes the next attempt start without a pause: the last one lost to
// a change that a fresh read settles (a held record moved, a key was
// released meanwhile).
func (r *Retry) Now() { r.now = true }

// Waited tells that the last attempt waited for something other than a
// CAS (another host's create, with a pause of its own): the next attempt
// starts without a pause and is not counted against MaxAttempts. The
// caller bounds such waits itself.
func (r *Retry) Waited() { r.now, r.free = true, true }

// Attempts is how many attempts began.
func (r *Retry) Attempts() int { return r.n }

// Err is the error of a loop that Next ended: what names the write and its
// key. It wraps ErrConflict, and the ctx's error when the ctx ended it.
func (r *Retry) Err(what string) error {
	took := time.Since(r.start).Round(time.Millisecond)
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("%s: lost to concurrent changes %d times in %s, until the call's deadline: %w (%w)", what, r.n, took, ErrConflict, err)
	}
	return fmt.Errorf("%s: lost to concurrent changes %d times in %s: %w", what, r.n, took, ErrConflict)
}

// BackoffPause is the jittered pause before attempt n+2 of a CAS loop
// (n from 0) that many hosts may run on one key at once: it doubles from
// 1–20 ms up to 320 ms, so contenders spread out instead of colliding in
// lockstep (50 hosts joining one network at once exhausted a fixed
// pause's time bound in `vxnet simulate`; every host's RequestPool claims
// its subnet on one key).
func BackoffPause(n int) time.Duration {
	return time.Duration(1+rand.IntN(20<<min(max(n, 0), 4))) * time.Millisecond
}

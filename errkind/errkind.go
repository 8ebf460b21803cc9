// Package errkind sorts vxnet's errors into the few kinds their callers
// act on: NotFound, Conflict, BadRequest and Unavailable. The store
// backends mark what they return (a missing key, a lost compare-and-swap,
// an unreachable Consul), the driver and IPAM callbacks mark what they
// refuse, the plugin server maps the kind to its HTTP status once, and the
// journal keeps a removal only while its error is Unavailable.
//
// It is a package of its own, below store, driver, ipam and the server,
// because every one of them marks or reads kinds and none of them should
// import another for that. A kind travels with the error through %w
// wrapping; the message stays the caller's, naming the object and the
// cause, so Docker's users read the same text as before.
package errkind

import (
	"context"
	"errors"
	"fmt"
)

// Kind is what went wrong, as far as a caller decides on it.
type Kind uint8

// The kinds. Other is every error not marked.
const (
	Other       Kind = iota
	NotFound         // the object does not exist
	Conflict         // another writer or another object holds it
	BadRequest       // the request is wrong; repeating it will not help
	Unavailable      // a service (the store) did not answer; it may later
)

var names = [...]string{"other", "not found", "conflict", "bad request", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("kind %d", k)
}

// kinded is an error marked with a kind.
type kinded struct {
	err  error
	kind Kind
}

func (e *kinded) Error() string { return e.err.Error() }
func (e *kinded) Unwrap() error { return e.err }
func (e *kinded) Kind() Kind    { return e.kind }

// New returns a new error of kind k with message msg, e.g. a sentinel
// such as store.ErrNotFound.
func New(k Kind, msg string) error { return &kinded{err: errors.New(msg), kind: k} }

// Errorf is fmt.Errorf with the result marked k.
func Errorf(k Kind, format string, args ...any) error {
	return &kinded{err: fmt.Errorf(format, args...), kind: k}
}

// Mark returns err marked k, its message unchanged; nil stays nil.
func Mark(err error, k Kind) error {
	if err == nil {
		return nil
	}
	return &kinded{err: err, kind: k}
}

// Of returns the kind of err: the outermost mark in its chain, so the
// caller that wraps an error last decides. An unmarked error whose chain
// holds context.DeadlineExceeded is Unavailable: whatever it waited for
// did not answer in time.
func Of(err error) Kind {
	var k interface{ Kind() Kind }
	if errors.As(err, &k) {
		return k.Kind()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Unavailable
	}
	return Other
}

// Is tells whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && Of(err) == k }

package dataplane

import (
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"
)

// rollback collects undo steps while a call creates kernel objects. If the
// call fails, finish runs them in reverse order of creation.
type rollback struct {
	steps []undoStep
}

type undoStep struct {
	what string
	fn   func() error
}

// push records how to undo something that was just created.
func (r *rollback) push(what string, fn func() error) {
	r.steps = append(r.steps, undoStep{what: what, fn: fn})
}

// finish returns err unchanged when it is nil. Otherwise it undoes every
// recorded step, newest first, and returns err joined with undo failures so
// the caller learns about anything left behind.
func (r *rollback) finish(log *logrus.Entry, err error) error {
	if err == nil {
		return nil
	}
	for i := len(r.steps) - 1; i >= 0; i-- {
		s := r.steps[i]
		log.WithField("undo", s.what).WithError(err).Info("rolling back")
		if uerr := s.fn(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo %s: %w", s.what, uerr))
		}
	}
	return err
}

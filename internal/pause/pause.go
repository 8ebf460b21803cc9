// Package pause waits out a delay unless a context ends first: the one
// sleep the background loops (peer watches, liveness, the simulator)
// share, so a cancelled agent stops at once instead of after its pause.
package pause

import (
	"context"
	"time"
)

// For waits d or until ctx is done, whichever comes first, and reports
// whether the whole pause elapsed.
func For(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

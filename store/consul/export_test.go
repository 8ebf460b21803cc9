package consul

import "time"

// SetAttempt sets one HTTP request's time (callTimeout), so tests of
// timed-out attempts run in milliseconds.
func SetAttempt(s *Store, d time.Duration) { s.attempt = d }

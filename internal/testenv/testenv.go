// Package testenv decides what a test does when something it needs is
// missing: outside CI it skips, saying what is missing; under CI=true,
// where `make test` installed everything, it fails, since a skipped test
// there would hide that nothing ran. Unit tests, e2e tests and the test
// helper packages (consultest, the e2e harness) all use it; it imports
// nothing of vxnet, so any of them can.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// CI tells whether the tests run under CI (CI=true).
func CI() bool { return os.Getenv("CI") == "true" }

// Missing ends t for a missing prerequisite, described by format and args
// (say what is missing and how to get it): skipped outside CI, failed
// under CI=true.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
	}
	t.Skip(msg)
}

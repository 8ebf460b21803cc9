package testenv

import (
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that notes how it was ended; like a test's, its
// Fatal and Skip end the goroutine.
type recorder struct {
	testing.TB
	failed, skipped string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.failed = args[0].(string); runtime.Goexit() }
func (r *recorder) Skip(args ...any)  { r.skipped = args[0].(string); runtime.Goexit() }

func TestMissing(t *testing.T) {
	for _, ci := range []string{"", "false", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Missing(r, "no %s (run %s)", "consul", "hack/consul.sh")
				t.Error("Missing returned: the test would go on without what it needs")
			}()
			<-done
			got, other := r.skipped, r.failed
			if ci == "true" {
				got, other = r.failed, r.skipped
			}
			if !strings.HasPrefix(got, "no consul (run hack/consul.sh)") || other != "" {
				t.Fatalf("CI=%q: failed %q, skipped %q; want only the %s, naming what is missing",
					ci, r.failed, r.skipped, map[bool]string{true: "failure", false: "skip"}[ci == "true"])
			}
		})
	}
}

//go:build bench

package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// stepSet is the measurements one TestBench run makes: all of them
// (`make bench`), or those VXNET_BENCH_STEPS names (comma-separated,
// e.g. "Throughput,Scale"), for short profiling runs. A name that is no
// step fails the run, so a typo does not measure nothing.
type stepSet map[string]bool

func benchSteps(t *testing.T, all ...string) stepSet {
	t.Helper()
	v := strings.TrimSpace(os.Getenv("VXNET_BENCH_STEPS"))
	s := stepSet{}
	if v == "" {
		for _, n := range all {
			s[n] = true
		}
		return s
	}
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(all, n) {
			t.Fatalf("VXNET_BENCH_STEPS=%q: no step %q (steps: %s)", v, n, strings.Join(all, ","))
		}
		s[n] = true
	}
	return s
}

func (s stepSet) run(name string) bool { return s[name] }

// partialResults points a run of some steps, unless VXNET_BENCH_DIR says
// where, at a new directory under /tmp: its summary would otherwise
// replace the full run's in bench/results with a partial one.
func (s stepSet) partialResults(t *testing.T) {
	t.Helper()
	if os.Getenv("VXNET_BENCH_STEPS") == "" || os.Getenv("VXNET_BENCH_DIR") != "" {
		return
	}
	dir, err := os.MkdirTemp("", "vxnet-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VXNET_BENCH_DIR", dir)
	t.Logf("steps %s only: results in %s", os.Getenv("VXNET_BENCH_STEPS"), dir)
}

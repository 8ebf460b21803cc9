//go:build bench

package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vxnet/vxnet/bench"
	"github.com/vxnet/vxnet/e2e/harness"
)

// TestBenchRunLatency is `make bench`, not part of `make test`: the time of
// `docker run --rm --network N busybox true` on a vxnet network next to
// Docker's bridge, runs interleaved in one session so machine noise hits
// both alike. It asserts nothing about the figures; it writes them to
// bench/results/run-latency.{json,png}.
func TestBenchRunLatency(t *testing.T) {
	const rounds = 20
	c := harness.Start(t, 1)
	h := c.Hosts[0]
	startPlugin(t, h, "")
	createNet(t, h, "benchnet", "198.19.1.0/24")
	h.MustDocker(t, "network", "create", "--subnet", "198.19.10.0/24", "benchbridge")
	t.Cleanup(func() { _, _ = h.Docker("network", "rm", "benchbridge") })
	nets := []string{"bridge", "benchbridge", "benchnet"}
	names := []string{"docker bridge (default)", "docker bridge (user)", "vxnet"}
	samples := make([][]float64, len(nets))
	for _, n := range nets { // warm-up, not counted
		h.MustDocker(t, "run", "--rm", "--network", n, harness.Image, "true")
	}
	for range rounds {
		for i, n := range nets {
			start := time.Now()
			h.MustDocker(t, "run", "--rm", "--network", n, harness.Image, "true")
			samples[i] = append(samples[i], float64(time.Since(start).Microseconds())/1000)
		}
	}
	r := &bench.Result{Name: "docker run --rm true", Unit: "ms", When: time.Now().UTC(),
		Command: "make bench", Note: "one dockerd 20.10 in a netns host, runs interleaved per round"}
	for i := range nets {
		r.Series = append(r.Series, bench.Series{Name: names[i], Samples: samples[i]})
	}
	r.Summarize()
	dir := os.Getenv("VXNET_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join("..", "bench", "results")
	}
	if err := r.Write(dir, "run-latency"); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r.Table())
	for _, n := range []string{"benchbridge", "benchnet"} {
		if err := removeNetwork(h, n); err != nil {
			t.Fatal(err)
		}
	}
	c.LeakCheck(t)
}

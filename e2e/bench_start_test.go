//go:build bench

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/vxnet/vxnet/bench"
	"github.com/vxnet/vxnet/e2e/harness"
)

// startRounds is how many `docker run` each network gets, interleaved.
const startRounds = 20

// benchStartLatency: `docker run --rm --network N busybox true` on host 1
// for Docker's default bridge, the swarm overlay and vxnet, one of each
// per round after a warm-up run of each. A vxnet network with --internal
// runs beside them: Docker attaches containers of a remote-driver network
// without --internal to docker_gwbridge as well (egress), which the
// overlay pays too; the difference is that part.
func benchStartLatency(t *testing.T, b *benchEnv) {
	h := b.host(1)
	createNet(t, h, "bvxi", "198.19.22.0/24", "--internal")
	vs := []struct{ name, net string }{{"Docker default bridge", benchBridge}, {"Docker swarm overlay", benchSwarm}, {"vxnet", benchVX},
		{"vxnet --internal (no docker_gwbridge)", "bvxi"}}
	samples := make([][]float64, len(vs))
	for _, v := range vs {
		h.MustDocker(t, "run", "--rm", "--network", v.net, harness.Image, "true")
	}
	for range startRounds {
		for i, v := range vs {
			start := time.Now()
			h.MustDocker(t, "run", "--rm", "--network", v.net, harness.Image, "true")
			samples[i] = append(samples[i], ms(time.Since(start)))
		}
	}
	r := &bench.Result{Name: "docker run --rm --network N true", Unit: "ms",
		Note: fmt.Sprintf("host 1 (a swarm manager), %d rounds of one run per network after a warm-up run each.", startRounds)}
	for i, v := range vs {
		r.Series = append(r.Series, bench.Series{Name: v.name, Samples: samples[i]})
	}
	b.add(t, "start-latency", r)
	br, vx := r.Series[0], r.Series[2]
	b.target("start latency vs default bridge (median)", "≤1.10×",
		fmt.Sprintf("%.2f× (%.0f vs %.0f ms; p90 %.2f×)", vx.Median/br.Median, vx.Median, br.Median, vx.P90/br.P90), vx.Median <= 1.10*br.Median)
}

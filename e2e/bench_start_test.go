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
//
// A user-defined bridge network runs beside them too: Docker starts its
// embedded DNS resolver (iptables rules set up inside the container's
// namespace, in the OCI prestart hook) for every user-defined network,
// whatever its driver, and never for the default bridge. That network is
// the floor of any plugin's network on this Docker.
//
// A vxnet network with -o vxnet.egress=own runs last: egress through one
// veth pair per network and host instead of a docker_gwbridge endpoint per
// container.
func benchStartLatency(t *testing.T, b *benchEnv) {
	h := b.host(1)
	createNet(t, h, "bvxi", "198.19.22.0/24", "--internal")
	createBridgeNet(t, h, "bbr", "198.19.23.0/24")
	createNet(t, h, "bvxo", "198.19.24.0/24", "-o", "vxnet.egress=own")
	vs := []struct{ name, net string }{{"Docker default bridge", benchBridge}, {"Docker swarm overlay", benchSwarm}, {"vxnet", benchVX},
		{"vxnet --internal (no docker_gwbridge)", "bvxi"}, {"Docker user-defined bridge (embedded DNS)", "bbr"},
		{"vxnet -o vxnet.egress=own", "bvxo"}}
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
	br, vx, vi, ud, vo := r.Series[0], r.Series[2], r.Series[3], r.Series[4], r.Series[5]
	t.Logf("vxnet vs Docker user-defined bridge (median): %.2f× (%.0f vs %.0f ms)", vx.Median/ud.Median, vx.Median, ud.Median)
	for _, s := range []bench.Series{vx, vi, vo, ud} {
		t.Logf("%s vs default bridge: median %.2f× (%.0f vs %.0f ms), p90 %.2f× (%.0f vs %.0f ms)",
			s.Name, s.Median/br.Median, s.Median, br.Median, s.P90/br.P90, s.P90, br.P90)
	}
	b.target("start latency vs default bridge (median)", "≤1.10×",
		fmt.Sprintf("%.2f× (%.0f vs %.0f ms; p90 %.2f×)", vx.Median/br.Median, vx.Median, br.Median, vx.P90/br.P90), vx.Median <= 1.10*br.Median)
}

// createBridgeNet creates a Docker bridge network on h, removed when the
// test ends.
func createBridgeNet(t *testing.T, h *harness.Host, name, subnet string) {
	t.Helper()
	h.MustDocker(t, "network", "create", "-d", "bridge", "--subnet", subnet, name)
	t.Cleanup(func() {
		if err := removeNetwork(h, name); err != nil {
			t.Error(err)
		}
	})
}

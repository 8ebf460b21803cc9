//go:build bench

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/bench"
)

// convergeRounds is how many containers each network gets, interleaved.
const convergeRounds = 15

// benchConvergence: a container started on host 1 → the first reply seen
// by a pinger already looping on host 2, on the swarm overlay and on
// vxnet by the same method. The pinger is busybox ping every 10 ms in the
// network namespace of host 2's long-running container; its lines are
// timestamped as they arrive. Its ARP retry interval is set to 10 ms (on
// both networks alike), or Linux's 1 s ARP retry would be what is
// measured. Two figures per run: from just before `docker run -d` and
// from its return (negative when the reply came first).
func benchConvergence(t *testing.T, b *benchEnv) {
	h1, h2 := b.host(1), b.host(2)
	vs := []struct{ name, net, prefix string }{
		{"Docker swarm overlay", benchSwarm, strings.TrimSuffix(benchSwNet, "0/24")},
		{"vxnet", benchVX, strings.TrimSuffix(benchVXNet, "0/24")},
	}
	netns := make([]string, len(vs))
	for i, v := range vs {
		netns[i] = containerNetns(t, h2, benchPeer(h2, v.net))
		if out, err := inNetns(netns[i], "sh", "-c", "for f in /proc/sys/net/ipv4/neigh/*/retrans_time_ms; do echo 10 > $f; done").CombinedOutput(); err != nil {
			t.Fatalf("ARP retry of the pinger on %s: %v: %s", v.name, err, out)
		}
	}
	full := make([][]float64, len(vs))
	after := make([][]float64, len(vs))
	for i := range convergeRounds {
		for j, v := range vs {
			name := fmt.Sprintf("cv-%s-%d", v.net, i)
			addr := fmt.Sprintf("%s%d", v.prefix, 100+i)
			// busybox ping flushes its output at replies only: give it
			// time to send its first requests instead
			ch, stop := lines(t, inNetns(netns[j], "busybox", "ping", "-i", "0.01", addr))
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			h1.MustDocker(t, append([]string{"run", "-d", "--name", name, "--network", v.net, "--ip", addr}, sleeper...)...)
			returned := time.Now()
			reply, err := waitLine(ch, "bytes from", 15*time.Second)
			stop()
			if _, rmErr := h1.Docker("rm", "-f", name); rmErr != nil {
				t.Errorf("remove %s: %v", name, rmErr)
			}
			if err != nil {
				t.Fatalf("%s: %s (%s) on %s never answered %s's pinger: %v", v.name, name, addr, h1.Name, h2.Name, err)
			}
			full[j] = append(full[j], ms(reply.Sub(start)))
			after[j] = append(after[j], ms(reply.Sub(returned)))
		}
	}
	r := &bench.Result{Name: "docker run -d on host 1 → first ping reply on host 2", Unit: "ms",
		Note: fmt.Sprintf("%d containers per network, interleaved; pinger every 10 ms with 10 ms ARP retry.", convergeRounds)}
	ra := &bench.Result{Name: "docker run -d returned → first ping reply on host 2", Unit: "ms", Ratio: "none",
		Note: "The part the network owns: negative when the reply came before `docker run -d` returned (the plot shows those as 0)."}
	for j, v := range vs {
		r.Series = append(r.Series, bench.Series{Name: v.name, Samples: full[j]})
		ra.Series = append(ra.Series, bench.Series{Name: v.name, Samples: after[j]})
	}
	b.add(t, "convergence", r)
	b.add(t, "convergence-after-run", ra)
	sw, vx := r.Series[0].Median, r.Series[1].Median
	b.target("convergence vs swarm overlay (median)", "≤0.8×", fmt.Sprintf("%.2f× (%.0f vs %.0f ms)", vx/sw, vx, sw), vx <= 0.8*sw)
	p99 := ra.Series[1].P99
	b.target("convergence from `docker run -d` returning, p99", "≤100 ms",
		fmt.Sprintf("%s (swarm overlay %s)", afterRun(p99), afterRun(ra.Series[0].P99)), p99 <= 100)
}

// afterRun words a time from `docker run -d` returning to the first reply.
func afterRun(ms float64) string {
	if ms < 0 {
		return fmt.Sprintf("reply %.0f ms before it returned", -ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

//go:build bench

package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/vxnet/vxnet/bench"
)

// throughputReps is how many times each variant is measured, interleaved.
const throughputReps = 5

// benchThroughput: iperf3 TCP, 1 and 4 streams, from host 1 to host 2 on
// the raw underlay (host to host), Docker's swarm overlay and vxnet
// (container to container). iperf3 is this machine's, run in the
// container's network namespace (nsenter): the busybox test image has
// none, and the packets take the same path as from inside the container.
func benchThroughput(t *testing.T, b *benchEnv) {
	h1, h2 := b.host(1), b.host(2)
	type variant struct{ name, src, dst, ip string }
	vs := []variant{{"raw underlay (host↔host)", h1.NetnsPath(), h2.NetnsPath(), h2.IP}}
	for _, n := range []struct{ name, net string }{{"Docker swarm overlay", benchSwarm}, {"vxnet", benchVX}} {
		vs = append(vs, variant{n.name, containerNetns(t, h1, benchPeer(h1, n.net)), containerNetns(t, h2, benchPeer(h2, n.net)),
			ip(t, h2, benchPeer(h2, n.net), n.net)})
	}
	for _, streams := range []int{1, 4} {
		samples := make([][]float64, len(vs))
		cpu := make([][]float64, len(vs)) // iperf3's CPU % (both ends) per Gbit/s
		for range throughputReps {
			for i, v := range vs {
				gbps, pct, err := iperf(t, v.src, v.dst, v.ip, streams)
				if err != nil {
					t.Fatalf("%s, %d streams: %v", v.name, streams, err)
				}
				samples[i] = append(samples[i], gbps)
				cpu[i] = append(cpu[i], pct/gbps)
			}
		}
		r := &bench.Result{Name: fmt.Sprintf("iperf3 TCP, %d stream(s), host 1 → host 2", streams), Unit: "Gbit/s",
			Note: fmt.Sprintf("%d runs of 3 s (+1 s omitted) per variant, interleaved; containers on the overlays, hosts on the underlay. "+
				"Paired ratios: vxnet's run over the other variant's run of the same repetition, median over the repetitions "+
				"(the machine's load drifts less within a repetition than across the run). CPU per Gbit/s: iperf3's own CPU "+
				"(client and server, user and system) per Gbit/s received.", throughputReps),
			Figures: map[string]float64{}}
		for i, v := range vs {
			r.Series = append(r.Series, bench.Series{Name: v.name, Samples: samples[i]})
			r.Figures["CPU %/(Gbit/s), "+v.name] = bench.Median(cpu[i])
		}
		vxRaw, vxSw := paired(samples[2], samples[0]), paired(samples[2], samples[1])
		r.Figures["paired ratio vxnet/raw"], r.Figures["paired ratio vxnet/overlay"] = vxRaw, vxSw
		r.Figures["CPU per Gbit/s, vxnet/raw"] = r.Figures["CPU %/(Gbit/s), "+vs[2].name] / r.Figures["CPU %/(Gbit/s), "+vs[0].name]
		b.add(t, "throughput-"+strconv.Itoa(streams), r)
		raw, sw, vx := r.Series[0].Median, r.Series[1].Median, r.Series[2].Median
		b.target(fmt.Sprintf("throughput, %d stream(s), vs raw underlay", streams), "≥0.95×",
			fmt.Sprintf("%.2f× paired (medians %.2f vs %.2f Gbit/s; CPU per Gbit/s %.2f×)", vxRaw, vx, raw,
				r.Figures["CPU per Gbit/s, vxnet/raw"]), vxRaw >= 0.95)
		b.target(fmt.Sprintf("throughput, %d stream(s), vs swarm overlay", streams), "≥1.05×",
			fmt.Sprintf("%.2f× paired (medians %.2f vs %.2f Gbit/s)", vxSw, vx, sw), vxSw >= 1.05)
	}
}

// paired is the median over repetitions of a[i]/b[i].
func paired(a, b []float64) float64 {
	r := make([]float64, 0, len(a))
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return bench.Median(r)
}

// iperf runs a one-off iperf3 server in namespace dst and a client in src
// sending to ip for 3 s, and returns what the server received in Gbit/s
// and the CPU both iperf3 processes used (percent of one core, summed).
func iperf(t *testing.T, src, dst, ip string, streams int) (gbps, cpu float64, err error) {
	t.Helper()
	out, stop := lines(t, inNetns(dst, "timeout", "30", "iperf3", "-s", "-1", "--forceflush", "-p", "5201"))
	defer stop()
	if _, err := waitLine(out, "Server listening", 10*time.Second); err != nil {
		return 0, 0, fmt.Errorf("iperf3 server in %s: %w", dst, err)
	}
	b, err := inNetns(src, "timeout", "30", "iperf3", "-c", ip, "-p", "5201", "-t", "3", "-O", "1",
		"-P", strconv.Itoa(streams), "-J").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("iperf3 client in %s to %s: %w: %s", src, ip, err, b)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			CPU struct {
				Host   float64 `json:"host_total"`
				Remote float64 `json:"remote_total"`
			} `json:"cpu_utilization_percent"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return 0, 0, fmt.Errorf("iperf3 client to %s: %w", ip, err)
	}
	if res.Error != "" || res.End.SumReceived.BitsPerSecond == 0 {
		return 0, 0, fmt.Errorf("iperf3 client to %s: nothing received (%s)", ip, res.Error)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, res.End.CPU.Host + res.End.CPU.Remote, nil
}

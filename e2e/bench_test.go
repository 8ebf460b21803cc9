//go:build bench

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/bench"
	"github.com/vxnet/vxnet/e2e/harness"
)

// TestBench is `make bench`, not part of `make test`: vxnet side by side
// with Docker's own networking on three netns hosts with real dockerd and
// Consul, in one run so machine noise hits every variant alike
// (repetitions interleave the variants). Hosts 1 and 2 also form a swarm
// with an attachable overlay network, Docker's own multi-host answer.
// Measurements, one file each: throughput (bench_throughput_test.go),
// start latency (bench_start_test.go), convergence
// (bench_converge_test.go), scale (bench_scale_test.go), failure purge
// (bench_purge_test.go). Each writes bench/results/<name>.{json,png};
// the end writes summary.json (machine, Docker, targets of issue #13) and
// prints the README section generated from the JSON files. It asserts
// the harness's invariants (every container answers, leak check), not the
// figures: a missed target is reported, not failed.
func TestBench(t *testing.T) {
	steps := benchSteps(t, "Throughput", "StartLatency", "Convergence", "Purge", "Scale")
	steps.partialResults(t)
	b := startBench(t)
	for _, m := range []struct {
		name string
		fn   func(*testing.T, *benchEnv)
	}{
		{"Throughput", benchThroughput},
		{"StartLatency", benchStartLatency},
		{"Convergence", benchConvergence},
		{"Purge", benchPurge},
		{"Scale", benchScale}, // the longest: last, after the summary has the others
	} {
		if !steps.run(m.name) {
			t.Logf("%s skipped: not in VXNET_BENCH_STEPS", m.name)
			continue
		}
		start := time.Now()
		t.Run(m.name, func(t *testing.T) { m.fn(t, b) })
		t.Logf("%s took %s", m.name, time.Since(start).Round(time.Second))
	}
	b.finish(t)
}

// benchPprofAddr is where each host's plugin serves /debug/pprof (in the
// host's network namespace): `nsenter --net=<host netns> go tool pprof
// http://127.0.0.1:6060/debug/pprof/profile` profiles it during a step.
const benchPprofAddr = "127.0.0.1:6060"

// Networks of the bench; subnets from 198.19.0.0/17 (Docker's own pool is
// the upper half).
const (
	benchVX     = "bvx" // vxnet on every host
	benchVXNet  = "198.19.20.0/24"
	benchSwarm  = "bsw" // Docker's attachable swarm overlay
	benchSwNet  = "198.19.21.0/24"
	benchBridge = "bridge" // Docker's default bridge
)

// benchEnv is the cluster every measurement shares.
type benchEnv struct {
	*multiHost
	lc      *leakChecker
	t       *testing.T // TestBench's, for writing the summary
	dir     string     // results directory
	docker  string     // dockerd --version of the hosts
	results []*bench.Result
	targets []bench.Target
}

func startBench(t *testing.T) *benchEnv {
	began := time.Now()
	// docker rm -f of a hundred containers on a loaded machine may take
	// minutes
	c := harness.StartWith(t, harness.Options{Hosts: 3, CommandTimeout: 5 * time.Minute})
	e := &multiHost{c: c, consul: c.StartConsul(t), prefix: "vxbench-" + randomHex(t, 4), driver: "vxnet"}
	for _, h := range c.Hosts {
		e.plugins = append(e.plugins, startPlugin(t, h, e.storeURI(), "--advertise-addr", h.IP, "--metrics-addr", metricsAddr, "--pprof-addr", benchPprofAddr))
	}
	c.AddLeakCheck("vxnet kernel objects", func(h *harness.Host) error { return e.plugin(h).kernelLeaks() })
	b := &benchEnv{multiHost: e, t: t, lc: &leakChecker{plugins: e.plugins, consul: e.consul.Addr(), prefix: e.prefix}}
	b.dir = os.Getenv("VXNET_BENCH_DIR")
	if b.dir == "" {
		b.dir = filepath.Join("..", "bench", "results")
	}
	b.docker = strings.TrimSpace(c.Hosts[0].MustDocker(t, "version", "-f", "dockerd {{.Server.Version}}, containerd {{range .Server.Components}}{{if eq .Name \"containerd\"}}{{.Version}}{{end}}{{end}}"))
	e.createNetEverywhere(t, benchVX, benchVXNet)
	e.prodVNI = e.newVNIs(t, nil)[0]
	b.startSwarm(t)
	for _, h := range c.Hosts[:2] {
		runC(t, h, benchPeer(h, benchVX), append([]string{"--network", benchVX}, sleeper...)...)
		runC(t, h, benchPeer(h, benchSwarm), append([]string{"--network", benchSwarm}, sleeper...)...)
	}
	t.Logf("bench cluster up in %s: %s; store %s", time.Since(began).Round(time.Second), b.docker, e.storeURI())
	return b
}

// startSwarm makes host 1 a swarm manager and host 2 a worker, and
// creates the attachable overlay benchSwarm. Docker's ingress VXLAN (VNI
// 4096) and vxnet's (VNIs from 0x100000) share UDP 4789, each device in
// its own namespace. Cleanup leaves the swarm.
func (b *benchEnv) startSwarm(t *testing.T) {
	mgr, w := b.host(1), b.host(2)
	t.Cleanup(func() {
		for _, h := range []*harness.Host{w, mgr} {
			if out, err := h.Docker("swarm", "leave", "--force"); err != nil && !strings.Contains(out, "not part of a swarm") {
				t.Errorf("%s: docker swarm leave: %v: %s", h.Name, err, out)
			}
		}
	})
	mgr.MustDocker(t, "swarm", "init", "--advertise-addr", mgr.IP,
		"--default-addr-pool", swarmAddrPool, "--default-addr-pool-mask-length", "24", "--task-history-limit", "0")
	token := mgr.MustDocker(t, "swarm", "join-token", "-q", "worker")
	w.MustDocker(t, "swarm", "join", "--token", token, "--advertise-addr", w.IP, mgr.IP+":2377")
	swarmWait(t, "2 ready nodes", 60*time.Second, func() (bool, string) {
		out, _ := mgr.Docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		return strings.Count(out, "Ready") == 2, out
	})
	mgr.MustDocker(t, "network", "create", "-d", "overlay", "--attachable", "--subnet", benchSwNet, benchSwarm)
	t.Cleanup(func() {
		if err := removeNetwork(mgr, benchSwarm); err != nil {
			t.Error(err)
		}
	})
}

// benchPeer is the long-running container of host h on network n.
func benchPeer(h *harness.Host, n string) string { return fmt.Sprintf("%s-peer%d", n, h.Index) }

// add writes r as dir/<file>.{json,png} and keeps it for the summary.
func (b *benchEnv) add(t *testing.T, file string, r *bench.Result) {
	t.Helper()
	r.When = time.Now().UTC()
	r.Command = "make bench"
	r.Summarize()
	if err := r.Write(b.dir, file); err != nil {
		t.Fatalf("write %s: %v", file, err)
	}
	b.results = append(b.results, r)
	t.Logf("\n%s", r.Table())
	b.writeSummary(t)
}

// target records one goal of the issue against its figure.
func (b *benchEnv) target(what, goal, figure string, met bool) {
	b.targets = append(b.targets, bench.Target{What: what, Goal: goal, Figure: figure, Met: met})
	b.writeSummary(b.t)
}

// writeSummary writes summary.json for the results so far, so a run cut
// short leaves a consistent set of files.
func (b *benchEnv) writeSummary(t *testing.T) {
	t.Helper()
	s := &bench.Summary{When: time.Now().UTC(), Machine: machine(), Docker: b.docker,
		Note: "Ratios are between variants measured interleaved in this one run. The machine has 2 cores shared " +
			"with other test runs, so absolute figures vary from run to run; ratios are the figures to compare."}
	for _, r := range b.results {
		s.Results = append(s.Results, r.File)
	}
	s.Targets = b.targets
	if err := bench.WriteSummary(b.dir, s); err != nil {
		t.Fatal(err)
	}
}

// finish writes the summary, prints the README section from the JSON
// files just written, and checks that nothing leaked.
func (b *benchEnv) finish(t *testing.T) {
	b.writeSummary(t)
	s, rs, err := bench.Load(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	md := bench.Markdown(s, rs)
	if err := os.WriteFile(filepath.Join(b.dir, "README-section.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("README section (also in %s/README-section.md):\n%s", b.dir, md)
	t.Run("LeakCheck", func(t *testing.T) { b.leakCheck(t) })
}

// leakCheck removes every container, the networks on every host and the
// swarm, and runs the harness's (links) and vxnet's (kernel, Consul) leak
// checks.
func (b *benchEnv) leakCheck(t *testing.T) {
	b.eachHost(t, removeAll)
	if err := removeNetwork(b.host(1), benchSwarm); err != nil {
		t.Error(err)
	}
	for _, h := range []*harness.Host{b.host(2), b.host(1)} {
		h.MustDocker(t, "swarm", "leave", "--force")
	}
	if _, err := b.lc.Wait(30 * time.Second); err != nil {
		t.Error(err)
	}
	b.c.LeakCheck(t)
}

// machine names the CPU, its cores and the kernel.
func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d cores, Linux %s", cpu, runtime.NumCPU(), strings.TrimSpace(string(kernel)))
}

// containerNetns is the network namespace of a running container, as a
// path for nsenter --net.
func containerNetns(t *testing.T, h *harness.Host, name string) string {
	t.Helper()
	pid := h.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", name)
	if pid == "" || pid == "0" {
		t.Fatalf("%s on %s is not running", name, h.Name)
	}
	return "/proc/" + pid + "/ns/net"
}

// inNetns runs a command of this machine (iperf3, busybox) in the network
// namespace netns: for a container the same network stack as inside it,
// with tools the busybox image lacks.
func inNetns(netns string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + netns, "--"}, args...)...)
}

// lines starts cmd and sends each line of its output with the time it
// arrived; the channel closes when the output ends. stop kills the command
// (also at Cleanup).
func lines(t *testing.T, cmd *exec.Cmd) (_ <-chan timedLine, stop func()) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	ch := make(chan timedLine, 1024)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(out)
		for s.Scan() {
			select {
			case ch <- timedLine{at: time.Now(), text: s.Text()}:
			default: // nobody reads any more: drop
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	stop = sync.OnceFunc(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	t.Cleanup(stop)
	return ch, stop
}

type timedLine struct {
	at   time.Time
	text string
}

// waitLine waits for a line holding substr and returns when it arrived.
func waitLine(ch <-chan timedLine, substr string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	var last string
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				return time.Time{}, fmt.Errorf("output ended before %q (last line %q)", substr, last)
			}
			if strings.Contains(l.text, substr) {
				return l.at, nil
			}
			last = l.text
		case <-deadline:
			return time.Time{}, fmt.Errorf("no %q within %s (last line %q)", substr, timeout, last)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

package e2e

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// killPoints are where crash cycles kill a plugin, in this order: inside
// each callback the cycle's commands cause, and at a random time.
var killPoints = []string{
	"NetworkDriver.CreateNetwork", "NetworkDriver.Join", "NetworkDriver.CreateEndpoint",
	"IpamDriver.RequestPool", "IpamDriver.RequestAddress", "NetworkDriver.Leave",
	"NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress", "NetworkDriver.DeleteNetwork",
	"IpamDriver.ReleasePool", "timer",
}

type crashReport struct {
	Cycles          int            `json:"cycles"`
	Kills           map[string]int `json:"kills_by_point"`
	MidCall         map[string]int `json:"kills_inside_the_callback"`
	NotReached      int            `json:"kills_after_the_ops_point_not_reached"`
	OpsFailed       int            `json:"docker_commands_failed"`
	OpErrors        []string       `json:"docker_command_errors"`
	DownPingsSent   int            `json:"pings_while_plugin_down_sent"`
	DownPingsRecv   int            `json:"pings_while_plugin_down_received"`
	BackgroundSent  int            `json:"background_pings_sent"`
	BackgroundRecv  int            `json:"background_pings_received"`
	BackgroundLost  int            `json:"background_pings_lost"`
	LeakCycles      int            `json:"cycles_with_leaks"`
	Leaks           []string       `json:"leaks"`
	ConvergedMedian float64        `json:"converged_median_seconds"`
	ConvergedMax    float64        `json:"converged_max_seconds"`
	RestartMedian   float64        `json:"restart_median_seconds"`
}

func (r *crashReport) String() string {
	var kills []string
	for _, p := range killPoints {
		if r.Kills[p] > 0 {
			kills = append(kills, fmt.Sprintf("%s %d (%d inside)", strings.TrimPrefix(strings.TrimPrefix(p, "NetworkDriver."), "IpamDriver."), r.Kills[p], r.MidCall[p]))
		}
	}
	return fmt.Sprintf("1. crash safety: %d cycles, kill -9 at %s, point not reached %d; docker commands failed %d; "+
		"cycles with leaks after restart+reconcile %d (converged median %.1fs, max %.1fs); pings while the plugin was down %d/%d; background pings %d/%d (%d lost)",
		r.Cycles, strings.Join(kills, ", "), r.NotReached, r.OpsFailed, r.LeakCycles, r.ConvergedMedian, r.ConvergedMax,
		r.DownPingsRecv, r.DownPingsSent, r.BackgroundRecv, r.BackgroundSent, r.BackgroundLost)
}

// testFaultCrash: CrashCycles times, a network is created on every host,
// a container started on each, both removed again, while the plugin of one
// random host is killed with SIGKILL at a point (inside a callback, or at
// a random time) and restarted 1–3 s later. Containers of a long-lived
// network ping across hosts throughout, and from the killed host while its
// plugin is down. After every cycle vxnet must match Docker exactly.
func testFaultCrash(t *testing.T, f *faults) {
	const base, baseSubnet = "base", "198.19.11.0/24"
	r := &crashReport{Kills: map[string]int{}, MidCall: map[string]int{}, OpErrors: []string{}, Leaks: []string{}}
	f.mu.Lock()
	f.report.Crash = r
	f.mu.Unlock()
	f.containerPerHost(t, base, baseSubnet, "base")
	ips := map[*harness.Host]string{}
	for _, h := range f.c.Hosts {
		ips[h] = ip(t, h, fmt.Sprintf("base%d", h.Index), base)
	}
	next := func(h *harness.Host) *harness.Host { return f.c.Hosts[h.Index%len(f.c.Hosts)] }
	for _, h := range f.c.Hosts {
		mustPing(t, h, fmt.Sprintf("base%d", h.Index), ips[next(h)])
	}
	var pings []*bgPing
	for _, h := range f.c.Hosts {
		pings = append(pings, startPing(t, h, fmt.Sprintf("base%d", h.Index), ips[next(h)], ""))
	}

	var converged, restarts []time.Duration
	for i := range f.cfg.CrashCycles {
		point := killPoints[i%len(killPoints)]
		victim := f.c.Hosts[f.rnd.IntN(len(f.c.Hosts))]
		conv, restart, err := f.crashCycle(t, r, i, point, victim, ips[next(victim)])
		r.Cycles++
		restarts = append(restarts, restart)
		if err != nil {
			r.LeakCycles++
			if len(r.Leaks) < 10 {
				r.Leaks = append(r.Leaks, fmt.Sprintf("cycle %d (%s on %s): %v", i, point, victim.Name, err))
			}
			t.Errorf("cycle %d (kill at %s on %s): %v", i, point, victim.Name, err)
			if r.LeakCycles >= 3 {
				t.Error("three cycles leaked: stopping the crash cycles")
				break
			}
			continue
		}
		converged = append(converged, conv)
	}
	for _, b := range pings {
		res, err := b.stop()
		if err != nil {
			t.Error(err)
		}
		t.Logf("background ping from %s across the crash cycles: %s", b.container, res)
		r.BackgroundSent += res.Sent
		r.BackgroundRecv += res.Recv
		r.BackgroundLost += res.Lost
	}
	med, worst := durations(converged)
	r.ConvergedMedian, r.ConvergedMax = secs(med), secs(worst)
	rmed, _ := durations(restarts)
	r.RestartMedian = secs(rmed)
	t.Log(r)
	if r.DownPingsRecv != r.DownPingsSent {
		t.Errorf("pings while a plugin was down: %d of %d answered", r.DownPingsRecv, r.DownPingsSent)
	}
	// A kill is a second or more without one host's plugin, never of the
	// kernel: no packet may be lost.
	if r.BackgroundLost > 0 || r.BackgroundSent == 0 {
		t.Errorf("background pings: %d sent, %d answered, %d lost; want none lost", r.BackgroundSent, r.BackgroundRecv, r.BackgroundLost)
	}
}

// crashCycle runs one cycle and returns how long vxnet took to match
// Docker again after the cycle's cleanup, how long the restarted plugin
// took to serve, and the leak checker's error.
func (f *faults) crashCycle(t *testing.T, r *crashReport, i int, point string, victim *harness.Host, peerIP string) (time.Duration, time.Duration, error) {
	const network, subnet = "cyc", "198.19.12.0/24"
	p := f.plugin(victim)
	delay := time.Duration(f.rnd.IntN(3000)) * time.Microsecond
	if point == "timer" {
		delay = time.Duration(f.rnd.IntN(5000)) * time.Millisecond
	}
	down := time.Second + time.Duration(f.rnd.IntN(2000))*time.Millisecond
	k := armKill(p, point, delay)
	opsDone := make(chan []string, 1)
	go func() { opsDone <- f.cycleOps(network, subnet) }()

	var opErrs []string
	opsFinished := false
	select {
	case <-k.done:
	case opErrs = <-opsDone:
		opsFinished = true
	}
	killed, err := k.disarm()
	if err != nil {
		t.Fatalf("cycle %d: %v", i, err)
	}
	if !killed {
		// The point was not reached (an earlier command failed): kill now.
		r.NotReached++
		if err := p.proc.Kill9(); err != nil {
			t.Fatal(err)
		}
	} else {
		r.Kills[point]++
		if mid, err := k.midCall(); err != nil {
			t.Error(err)
		} else if mid {
			r.MidCall[point]++
		}
	}
	killedAt := time.Now()
	// Traffic from the victim's container while its plugin is down.
	out, _ := victim.Docker("exec", fmt.Sprintf("base%d", victim.Index), "ping", "-c", "4", "-i", "0.25", "-W", "1", peerIP)
	if m := pingStats.FindStringSubmatch(out); m != nil {
		sent, _ := strconv.Atoi(m[1])
		recv, _ := strconv.Atoi(m[2])
		r.DownPingsSent += sent
		r.DownPingsRecv += recv
	} else {
		t.Errorf("cycle %d: ping from %s while its plugin was down: %.300s", i, victim.Name, out)
	}
	if rest := down - time.Since(killedAt); rest > 0 {
		time.Sleep(rest)
	}
	restartAt := time.Now()
	p.start(t)
	restart := time.Since(restartAt)
	if !opsFinished {
		opErrs = <-opsDone
	}
	r.OpsFailed += len(opErrs)
	for _, e := range opErrs {
		if len(r.OpErrors) < 20 {
			r.OpErrors = append(r.OpErrors, fmt.Sprintf("cycle %d (%s on %s): %.300s", i, point, victim.Name, e))
		}
	}
	// Clean up as a user would, then vxnet must match Docker again.
	var wg sync.WaitGroup
	errs := make([]error, len(f.c.Hosts))
	for j, h := range f.c.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Docker("rm", "-f", fmt.Sprintf("cy%d", h.Index)); err != nil && !strings.Contains(err.Error(), "No such container") {
				errs[j] = err
				return
			}
			errs[j] = removeNetwork(h, network)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, restart, fmt.Errorf("cleanup through docker: %w", err)
	}
	conv, err := f.lc.Wait(20 * time.Second)
	return conv, restart, err
}

// cycleOps creates the network on every host, starts a container on each,
// removes the containers and the network, each step on all hosts at once,
// and returns the errors of the docker commands.
func (f *faults) cycleOps(network, subnet string) []string {
	var mu sync.Mutex
	var errs []string
	step := func(fn func(h *harness.Host) error) {
		var wg sync.WaitGroup
		for _, h := range f.c.Hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(h); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %v", h.Name, err))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	docker := func(args func(h *harness.Host) []string) func(h *harness.Host) error {
		return func(h *harness.Host) error { _, err := h.Docker(args(h)...); return err }
	}
	step(docker(func(*harness.Host) []string {
		return []string{"network", "create", "-d", "vxnet", "--ipam-driver", "vxnet", "--subnet", subnet, network}
	}))
	step(docker(func(h *harness.Host) []string {
		return append([]string{"run", "-d", "--name", fmt.Sprintf("cy%d", h.Index), "--network", network}, sleeper...)
	}))
	step(docker(func(h *harness.Host) []string { return []string{"rm", "-f", fmt.Sprintf("cy%d", h.Index)} }))
	// removeNetwork waits out dockerd's own endpoint-release race.
	step(func(h *harness.Host) error { return removeNetwork(h, network) })
	sort.Strings(errs)
	return errs
}

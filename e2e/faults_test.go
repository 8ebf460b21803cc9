package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// The reliability suite: three Docker hosts, a real three-server Consul
// cluster with a client agent on every host (the plugins use
// consul://127.0.0.1:8500), and six scenarios that each report measured
// figures: concurrency, crash safety, Consul leader loss, Consul outage,
// drift repair and bad input. Every scenario ends with the leak checker
// (leak_test.go) comparing kernel and store with Docker's state.
//
// VXNET_FAULTS=full runs the full form (`make faults`: 100 crash cycles,
// a 30 s outage, 3×50 parallel runs...) and writes the figures to
// bench/results/faults.json; the default is a reduced form that `make
// test` runs in a few minutes. The figures are printed in one block at
// the end either way.

// faultsConfig sizes the scenarios.
type faultsConfig struct {
	Form           string        `json:"form"`
	CrashCycles    int           `json:"crash_cycles"`
	Outage         time.Duration `json:"-"`
	OutageSeconds  float64       `json:"outage_seconds"`
	RunsPerHost    int           `json:"concurrency_runs_per_host"`
	LeaderRuns     int           `json:"leader_loss_runs_per_host"`
	BadInputRandom int           `json:"bad_input_random_requests"`
	Seed           uint64        `json:"seed"`
}

func newFaultsConfig(t *testing.T) faultsConfig {
	c, err := faultsConfigFrom(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// faultsConfigFrom reads VXNET_FAULTS and VXNET_FAULTS_SEED through
// getenv; a seed that is not a whole uint64 is an error, not a random seed
// in its place, so a run asked to replay a seed replays it or fails.
func faultsConfigFrom(getenv func(string) string) (faultsConfig, error) {
	c := faultsConfig{Form: "reduced", CrashCycles: 10, Outage: 12 * time.Second, RunsPerHost: 10, LeaderRuns: 8, BadInputRandom: 200}
	switch f := getenv("VXNET_FAULTS"); f {
	case "", "reduced":
	case "full":
		c = faultsConfig{Form: "full", CrashCycles: 100, Outage: 30 * time.Second, RunsPerHost: 50, LeaderRuns: 20, BadInputRandom: 2000}
	default:
		return c, fmt.Errorf("VXNET_FAULTS=%q: want full or reduced", f)
	}
	c.OutageSeconds = c.Outage.Seconds()
	c.Seed = rand.Uint64()
	if s := getenv("VXNET_FAULTS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return c, fmt.Errorf("VXNET_FAULTS_SEED=%q: want a decimal uint64: %w", s, err)
		}
		c.Seed = seed
	}
	return c, nil
}

// TestFaultsConfig: the seed and form asked for are the ones used, and a
// malformed one fails instead of being replaced. It needs no cluster.
func TestFaultsConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := faultsConfigFrom(env(map[string]string{"VXNET_FAULTS": "full", "VXNET_FAULTS_SEED": "18446744073709551615"}))
	if err != nil || c.Form != "full" || c.Seed != 18446744073709551615 || c.CrashCycles != 100 || c.OutageSeconds != 30 {
		t.Fatalf("full form, seed 2^64-1: %+v, %v", c, err)
	}
	if c, err := faultsConfigFrom(env(nil)); err != nil || c.Form != "reduced" || c.CrashCycles != 10 {
		t.Fatalf("default: %+v, %v; want the reduced form", c, err)
	}
	for _, tt := range []struct{ name, value, want string }{
		{"VXNET_FAULTS_SEED", "12abc", `VXNET_FAULTS_SEED="12abc": want a decimal uint64`},
		{"VXNET_FAULTS_SEED", "abc", `VXNET_FAULTS_SEED="abc"`},
		{"VXNET_FAULTS_SEED", "-1", `VXNET_FAULTS_SEED="-1"`},
		{"VXNET_FAULTS_SEED", "18446744073709551616", `VXNET_FAULTS_SEED="18446744073709551616"`},
		{"VXNET_FAULTS", "huge", `VXNET_FAULTS="huge": want full or reduced`},
	} {
		if c, err := faultsConfigFrom(env(map[string]string{tt.name: tt.value})); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%q: %+v, %v; want an error containing %q", tt.name, tt.value, c, err, tt.want)
		}
	}
}

// faults is the shared state of TestFaults.
type faults struct {
	cfg     faultsConfig
	c       *harness.Cluster
	cc      *harness.ConsulCluster
	prefix  string
	plugins []*plugin
	lc      *leakChecker
	rnd     *rand.Rand

	mu     sync.Mutex
	report faultsReport
}

// faultsReport is every figure of the suite, as printed and as written to
// bench/results/faults.json.
type faultsReport struct {
	Config      faultsConfig       `json:"config"`
	Concurrency *concurrencyReport `json:"concurrency,omitempty"`
	Crash       *crashReport       `json:"crash_safety,omitempty"`
	LeaderLoss  *leaderReport      `json:"leader_loss,omitempty"`
	Outage      *outageReport      `json:"consul_outage,omitempty"`
	Drift       *driftReport       `json:"drift,omitempty"`
	BadInput    *badInputReport    `json:"bad_input,omitempty"`
	Fuzz        json.RawMessage    `json:"fuzz,omitempty"`
	Leaks       []string           `json:"final_leaks"`
	// DockerdRestarts is how often dockerd had to be restarted to forget
	// an endpoint of a removed container (a dockerd bug, not vxnet state).
	DockerdRestarts int32              `json:"dockerd_restarts_to_remove_a_network"`
	Passed          map[string]bool    `json:"passed"`
	Took            map[string]float64 `json:"seconds"`
}

// TestFaults runs the reliability scenarios on one cluster.
func TestFaults(t *testing.T) {
	cfg := newFaultsConfig(t)
	c := harness.StartWith(t, harness.Options{Hosts: 3, CommandTimeout: 3 * time.Minute})
	began := time.Now()
	f := &faults{cfg: cfg, c: c, cc: c.StartConsulCluster(t), prefix: "vxe2e-" + randomHex(t, 4),
		rnd: rand.New(rand.NewPCG(cfg.Seed, 0x7678))}
	f.report = faultsReport{Config: cfg, Passed: map[string]bool{}, Took: map[string]float64{}}
	storeURI := "consul://127.0.0.1:8500/" + f.prefix
	for _, h := range c.Hosts {
		// The default reconcile interval (startPlugin's 2s is for the
		// other tests), so the drift figures are what users get.
		f.plugins = append(f.plugins, startPlugin(t, h, storeURI, "--advertise-addr", h.IP, "--reconcile-interval", "5s"))
	}
	// The checker reads Consul through host 1's client agent, which every
	// scenario leaves running (servers come and go).
	f.lc = &leakChecker{plugins: f.plugins, consul: f.cc.Client(c.Hosts[0]).Addr(), prefix: f.prefix}
	c.AddLeakCheck("vxnet state against Docker's", func(h *harness.Host) error {
		if h.Index != 1 {
			return nil // one check covers every host and the store
		}
		_, err := f.lc.Wait(20 * time.Second)
		return err
	})
	t.Logf("faults (%s form, seed %d): cluster, consul and plugins up in %s (store %s)",
		cfg.Form, cfg.Seed, time.Since(began).Round(time.Millisecond), storeURI)

	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *faults)
	}{
		{"Concurrency", testFaultConcurrency},
		{"CrashSafety", testFaultCrash},
		{"LeaderLoss", testFaultLeaderLoss},
		{"ConsulOutage", testFaultOutage},
		{"Drift", testFaultDrift},
		{"BadInput", testFaultBadInput},
	} {
		start := time.Now()
		ok := t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
		f.mu.Lock()
		f.report.Passed[tc.name] = ok
		f.report.Took[tc.name] = time.Since(start).Round(time.Millisecond).Seconds()
		f.mu.Unlock()
		if !ok {
			for _, p := range f.plugins {
				t.Logf("vxnet on %s, log tail:\n%s", p.h.Name, p.proc.LogTail())
			}
		}
	}
	t.Run("LeakCheck", func(t *testing.T) { f.finalLeakCheck(t) })
	f.report.Took["total"] = time.Since(began).Round(time.Millisecond).Seconds()
	f.summary(t)
}

// finalLeakCheck removes everything left, checks kernel and store against
// an empty Docker, stops the plugins and wants the Consul prefix empty.
func (f *faults) finalLeakCheck(t *testing.T) {
	f.eachHost(t, func(h *harness.Host) error { return removeAll(h) })
	if _, err := f.lc.Wait(20 * time.Second); err != nil {
		f.report.Leaks = append(f.report.Leaks, err.Error())
		t.Error(err)
	}
	stopPlugins(t, f.plugins)
	keys, err := harness.ConsulKeys(f.lc.consul, f.prefix+"/")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		f.report.Leaks = append(f.report.Leaks, keys...)
		t.Errorf("consul keys left under %s/ after every network was removed and every plugin stopped:\n%s", f.prefix, strings.Join(keys, "\n"))
	}
}

// removeAll removes every container and every vxnet network of a host.
func removeAll(h *harness.Host) error {
	if out, err := h.Docker("ps", "-aq"); err != nil {
		return err
	} else if out != "" {
		if _, err := h.Docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...); err != nil {
			return err
		}
	}
	out, err := h.Docker("network", "ls", "-q", "--filter", "driver=vxnet")
	if err != nil || out == "" {
		return err
	}
	// dockerd releases the endpoints of removed containers after `rm -f`
	// returns: with a hundred and more that takes longer than
	// removeNetwork waits.
	if _, err := poll(2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		n, err := h.Docker(append([]string{"network", "inspect", "-f", "{{len .Containers}}"}, strings.Fields(out)...)...)
		return err == nil && strings.Trim(n, "0\n") == "", err
	}); err != nil {
		return fmt.Errorf("%s: endpoints of removed containers still there: %w", h.Name, err)
	}
	for _, id := range strings.Fields(out) {
		if err := removeNetworkRecount(h, id); err != nil {
			return err
		}
	}
	return nil
}

// removeNetworkRecount is removeNetwork for the end of a test: dockerd
// 20.10 sometimes keeps counting an endpoint of a removed container (no
// container left, no call to the plugin missing; seen among a hundred
// removed at once, and once in TestMultiHost's final cleanup); a restart
// recounts.
func removeNetworkRecount(h *harness.Host, name string) error {
	err := removeNetwork(h, name)
	if err != nil && strings.Contains(err.Error(), "has active endpoints") {
		if rerr := errors.Join(h.StopDockerd(), h.StartDockerd()); rerr != nil {
			return errors.Join(err, rerr)
		}
		dockerdRecounts.Add(1)
		err = removeNetwork(h, name)
	}
	return err
}

// dockerdRecounts counts the dockerd restarts removeAll needed to remove a
// network dockerd still counted an endpoint of (reported with the figures).
var dockerdRecounts atomic.Int32

// containerPerHost creates network on every host and runs a container
// <prefix><host index> on it on each; everything on the hosts is removed
// when the test ends.
func (f *faults) containerPerHost(t *testing.T, network, subnet, prefix string) {
	t.Helper()
	f.netEverywhere(t, network, subnet)
	f.eachHost(t, func(h *harness.Host) error {
		_, err := h.Docker(append([]string{"run", "-d", "--name", fmt.Sprintf("%s%d", prefix, h.Index), "--network", network}, sleeper...)...)
		return err
	})
	t.Cleanup(func() { f.eachHost(t, func(h *harness.Host) error { return removeAll(h) }) })
}

func (f *faults) eachHost(t *testing.T, fn func(h *harness.Host) error) {
	t.Helper()
	(&multiHost{c: f.c}).eachHost(t, fn)
}

func (f *faults) plugin(h *harness.Host) *plugin { return f.plugins[h.Index-1] }

// netEverywhere creates a vxnet network on every host (in parallel) and
// removes it when the test ends.
func (f *faults) netEverywhere(t *testing.T, name, subnet string) {
	t.Helper()
	f.eachHost(t, func(h *harness.Host) error {
		_, err := h.Docker("network", "create", "-d", "vxnet", "--ipam-driver", "vxnet", "--subnet", subnet, name)
		return err
	})
	t.Cleanup(func() {
		for _, h := range f.c.Hosts {
			if err := removeNetwork(h, name); err != nil {
				t.Error(err)
			}
		}
	})
}

// leakCheck waits for vxnet to match Docker (after the scenario removed
// what it made) and fails the test naming every difference.
func (f *faults) leakCheck(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	d, err := f.lc.Wait(timeout)
	if err != nil {
		t.Errorf("leak check after %s: %v", d.Round(time.Millisecond), err)
	}
	return d
}

// summary prints every figure in one block and, for the full form, writes
// them to bench/results/faults.json.
func (f *faults) summary(t *testing.T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := os.Getenv("VXNET_FUZZ_RESULTS"); p != "" {
		if b, err := os.ReadFile(p); err == nil && json.Valid(b) {
			f.report.Fuzz = b
		}
	}
	if f.report.Leaks == nil {
		f.report.Leaks = []string{}
	}
	f.report.DockerdRestarts = dockerdRecounts.Load()
	b, err := json.MarshalIndent(f.report, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, s := range []fmt.Stringer{f.report.Concurrency, f.report.Crash, f.report.LeaderLoss, f.report.Outage, f.report.Drift, f.report.BadInput} {
		if !isNil(s) {
			lines = append(lines, s.String())
		}
	}
	sort.Strings(lines) // by the numbering
	t.Logf("faults summary (%s form, seed %d, %.0fs):\n%s\nfinal leaks: %d; dockerd restarts to remove a network dockerd still counted an endpoint of: %d",
		f.cfg.Form, f.cfg.Seed, f.report.Took["total"], strings.Join(lines, "\n"), len(f.report.Leaks), f.report.DockerdRestarts)
	if f.cfg.Form != "full" {
		return
	}
	dir, err := findDir("bench/results")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "faults.json")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("figures written to %s", out)
}

func isNil(s fmt.Stringer) bool {
	switch v := s.(type) {
	case *concurrencyReport:
		return v == nil
	case *crashReport:
		return v == nil
	case *leaderReport:
		return v == nil
	case *outageReport:
		return v == nil
	case *driftReport:
		return v == nil
	case *badInputReport:
		return v == nil
	}
	return s == nil
}

// findDir finds rel in the working directory or above (the module root).
func findDir(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s in the working directory or above", rel)
		}
		dir = parent
	}
}

// secs rounds a duration to milliseconds, in seconds, for the report.
func secs(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

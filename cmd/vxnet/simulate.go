package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vxnet/vxnet/driver/liveness"
	"github.com/vxnet/vxnet/internal/pause"
	"github.com/vxnet/vxnet/store/keys"
	"golang.org/x/sync/errgroup"
)

// `vxnet simulate` runs many host agents — the plugin's own store sync,
// liveness, watch handling and peer decisions — in one process against a
// real Consul, each on a data plane that records instead of programming
// the kernel (driver/simplane). It sends the requests Docker would and
// measures what scaling out costs: propagation of a new endpoint to every
// other host, Consul traffic per endpoint, purge of hosts switched off,
// the keeping of silent hosts, CPU and memory per agent.

type simConfig struct {
	Stores   []string // Consul URIs; host i talks to Stores[i % len]
	Hosts    []int    // one run per entry
	Networks int
	PerHost  int     // endpoints per host
	Kill     float64 // share of hosts switched off
	Silent   float64 // share of hosts cut off from Consul, underlay answering
	// KillMonitors is how many liveness monitors are among the hosts
	// switched off (as many as fit): 2, both, is the worst case.
	KillMonitors int
	Parallel     int    // hosts sending requests at once
	CreatePar    int    // hosts creating networks at once
	Out          string // directory for scale.json and the plots; "" none
	LogLevel     string
	Prefix       string
	Quiet        time.Duration // idle window measured for background traffic
	Propagate    time.Duration // bound on waiting for propagation
	Budget       time.Duration // bound on all runs together; 0 none
	// CreateOnly stops each run after the network creates and an idle
	// window: the background per host, without the endpoint phases.
	CreateOnly bool
}

func parseSimConfig(args []string, stderr io.Writer) (*simConfig, error) {
	c := &simConfig{}
	fs := flag.NewFlagSet("vxnet simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stores := fs.String("store", "consul://127.0.0.1:8500/vxnet-sim", "Consul URIs, comma-separated (host i uses the i-th modulo their number); each run uses a fresh key prefix below the URI's")
	hosts := fs.String("hosts", "10", "simulated hosts: one run per comma-separated count, e.g. 10,50,100,200")
	fs.IntVar(&c.Networks, "networks", 20, "networks (each host joins those its endpoints use)")
	fs.IntVar(&c.PerHost, "endpoints-per-host", 25, "endpoints each host starts")
	fs.Float64Var(&c.Kill, "kill", 0.1, "share of hosts switched off (store and underlay gone) to measure the purge")
	fs.IntVar(&c.KillMonitors, "kill-monitors", 2, "liveness monitors among the hosts switched off (0-2, as many as fit): 2, both at once, is the worst case for the purge")
	fs.Float64Var(&c.Silent, "silent", 0.05, "share of hosts cut off from Consul with their underlay answering: their entries must stay")
	fs.IntVar(&c.Parallel, "parallel", 32, "hosts adding endpoints at once")
	fs.IntVar(&c.CreatePar, "create-parallel", 4, "hosts creating networks at once (every network create claims its subnet in the one key ipam/subnets: see docs/scaling.md)")
	fs.StringVar(&c.Out, "out", "", "write scale-out.json and scale-out-propagation.png to this directory")
	fs.StringVar(&c.LogLevel, "log-level", "error", "agents' log level")
	fs.DurationVar(&c.Quiet, "quiet", 10*time.Second, "idle window in which background store traffic is measured")
	fs.DurationVar(&c.Propagate, "propagate-timeout", time.Minute, "bound on waiting for every host to program every endpoint")
	fs.DurationVar(&c.Budget, "budget", 0, "bound on all runs together (0: none); a run cut off by it is recorded as failed")
	fs.BoolVar(&c.CreateOnly, "create-only", false, "stop each run after the network creates and an idle window of --quiet (the hosts' background load, quickly)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.Stores = strings.Split(*stores, ",")
	for _, s := range strings.Split(*hosts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > 60000 {
			return nil, fmt.Errorf("--hosts %q: want counts between 2 and 60000", *hosts)
		}
		c.Hosts = append(c.Hosts, n)
	}
	switch {
	case c.Networks < 1 || c.Networks > 250:
		return nil, fmt.Errorf("--networks %d: want 1..250 (each gets a /22 of 198.19.0.0/16)", c.Networks)
	case c.PerHost < 1:
		return nil, fmt.Errorf("--endpoints-per-host %d: want at least 1", c.PerHost)
	case c.Kill < 0 || c.Silent < 0 || c.Kill+c.Silent >= 1:
		return nil, fmt.Errorf("--kill %g and --silent %g: want shares with a sum below 1", c.Kill, c.Silent)
	case c.KillMonitors < 0 || c.KillMonitors > 2:
		return nil, fmt.Errorf("--kill-monitors %d: want 0, 1 or 2", c.KillMonitors)
	case c.Parallel < 1 || c.CreatePar < 1:
		return nil, fmt.Errorf("--parallel %d, --create-parallel %d: want at least 1", c.Parallel, c.CreatePar)
	}
	return c, nil
}

func simulateCmd(args []string, stdout, stderr io.Writer) int {
	c, err := parseSimConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "vxnet simulate:", err)
		return 2
	}
	log, err := quietLogger(c.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "vxnet simulate:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if c.Budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Budget)
		defer cancel()
	}
	var runs []simResult
	failed := false
	for _, n := range c.Hosts {
		r, err := runSimulation(ctx, c, n, log)
		if err != nil {
			// A size that breaks is a result too: what broke, and in
			// which phase, is kept with the sizes that worked.
			fmt.Fprintf(stderr, "vxnet simulate: %d hosts: %v\n", n, err)
			r.Error, failed = err.Error(), true
		} else {
			fmt.Fprintln(stdout, r.summary())
		}
		fmt.Fprint(stdout, r.callsSummary())
		runs = append(runs, *r)
		if c.Out != "" {
			if err := writeSimResults(c.Out, runs); err != nil {
				fmt.Fprintln(stderr, "vxnet simulate:", err)
				return 1
			}
		}
	}
	fmt.Fprint(stdout, simTable(runs))
	if failed {
		return 1
	}
	return 0
}

// sim is one run: its hosts and what is measured of them.
type sim struct {
	c      *simConfig
	prefix string
	log    *logrus.Entry
	counts storeCounts
	track  *tracker
	hosts  []*simHost
	// byVTEP is written while the first hosts already probe (since
	// change 30 every follower probes the monitors from its start).
	vtepMu sync.RWMutex
	byVTEP map[netip.Addr]*simHost
}

func (s *sim) storeURI(i int) string {
	return strings.TrimRight(s.c.Stores[i%len(s.c.Stores)], "/") + "/" + s.prefix
}

// probe is the liveness probe of every simulated host: a host's underlay
// answers unless the simulation switched it off.
func (s *sim) probe(_ context.Context, a netip.Addr) bool {
	s.vtepMu.RLock()
	h := s.byVTEP[a]
	s.vtepMu.RUnlock()
	return h != nil && h.answers.Load()
}

func simSubnet(n int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(4 * n), 0}), 22)
}

// netOf places endpoint e of host h on a network: hosts spread their
// endpoints over all networks, so each network spans many hosts.
func (s *sim) netOf(h, e int) int { return (h*7 + e) % s.c.Networks }

func runSimulation(ctx context.Context, c *simConfig, n int, log *logrus.Entry) (*simResult, error) {
	s := &sim{c: c, prefix: fmt.Sprintf("run-%d-%d", n, time.Now().UnixNano()), log: log, track: newTracker(), byVTEP: map[netip.Addr]*simHost{}}
	r := &simResult{Hosts: n, Networks: c.Networks, Endpoints: n * c.PerHost, Kill: c.Kill, Silent: c.Silent, When: time.Now().UTC(), Parallel: c.Parallel, CreateParallel: c.CreatePar}
	cpu0 := cpuTime()
	start := time.Now()
	defer s.cleanup(context.WithoutCancel(ctx))
	defer func() {
		wall := time.Since(start).Seconds()
		r.CPUPerHost = (cpuTime() - cpu0).Seconds() / wall / float64(n)
		r.Seconds = wall
	}()
	r.Phase = "start hosts"
	if err := s.startHosts(ctx, n); err != nil {
		return r, err
	}
	r.StartSeconds = time.Since(start).Seconds()
	r.Phase = "create networks"
	t := time.Now()
	if err := s.createNetworks(ctx, r); err != nil {
		return r, err
	}
	r.CreateSeconds = time.Since(t).Seconds()
	if c.CreateOnly {
		r.Phase = "idle"
		s.measureQuiet(ctx, r)
		r.Phase = "done"
		return r, ctx.Err()
	}
	r.Phase = "add endpoints"
	if err := s.addEndpoints(ctx, r); err != nil {
		return r, err
	}
	r.Phase = "idle"
	s.measureQuiet(ctx, r)
	r.RSSBytesPerHost = rssBytes() / int64(n)
	r.Phase = "silent hosts"
	if err := s.silentHosts(ctx, r); err != nil {
		return r, err
	}
	r.Phase = "kill hosts"
	s.killHosts(ctx, r)
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("cut off during %s: %w", r.Phase, err)
	}
	r.Phase = "done"
	return r, nil
}

func (s *sim) startHosts(ctx context.Context, n int) error {
	s.hosts = make([]*simHost, n)
	// The hosts live on ctx, not on the group's context, which ends
	// when the group is done.
	var g errgroup.Group
	g.SetLimit(s.c.Parallel)
	for i := range n {
		g.Go(func() error {
			h, err := startSimHost(ctx, s, i)
			s.hosts[i] = h
			return err
		})
	}
	err := g.Wait()
	s.vtepMu.Lock()
	defer s.vtepMu.Unlock()
	for _, h := range s.hosts {
		if h != nil {
			s.byVTEP[h.vtep] = h
		}
	}
	return err
}

// createNetworks has every host create the networks its endpoints use.
func (s *sim) createNetworks(ctx context.Context, r *simResult) error {
	var mu sync.Mutex
	var took []float64
	defer s.countPhase(&r.CreateCalls, &r.CreateConflicts, &r.CreateCPU)()
	err := s.eachHost(ctx, s.c.CreatePar, func(ctx context.Context, h *simHost) error {
		for e := range s.c.PerHost {
			n := s.netOf(h.idx, e)
			if _, ok := h.nets[n]; ok {
				continue
			}
			t := time.Now()
			if err := h.createNetwork(ctx, n, simSubnet(n)); err != nil {
				return err
			}
			mu.Lock()
			took = append(took, time.Since(t).Seconds()*1000)
			mu.Unlock()
		}
		return nil
	})
	r.NetworkCreateMs = summarize(took)
	return err
}

// addEndpoints starts every host's endpoints and waits until every other
// host of each network programmed them.
func (s *sim) addEndpoints(ctx context.Context, r *simResult) error {
	members := map[int][]int{}
	for _, h := range s.hosts {
		for n := range h.nets {
			members[n] = append(members[n], h.idx)
		}
	}
	before, kinds := s.counts.snapshot(), s.counts.kinds()
	var mu sync.Mutex
	var took []float64
	t0 := time.Now()
	// Counted whether or not the phase completes: a size that breaks
	// here says what loaded the store.
	defer s.countPhase(&r.AddCalls, &r.AddConflicts, &r.AddCPU)()
	err := s.eachHost(ctx, s.c.Parallel, func(ctx context.Context, h *simHost) error {
		for e := range s.c.PerHost {
			n := s.netOf(h.idx, e)
			t := time.Now()
			a, written, err := h.addEndpoint(ctx, n)
			if err != nil {
				return err
			}
			var others []int
			for _, m := range members[n] {
				if m != h.idx {
					others = append(others, m)
				}
			}
			s.track.added(a, h.idx, others, written)
			mu.Lock()
			took = append(took, time.Since(t).Seconds()*1000)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.EndpointAddMs = summarize(took)
	r.AddSeconds = time.Since(t0).Seconds()
	deadline := time.Now().Add(s.c.Propagate)
	var lags []float64
	for {
		lags, r.PropagationMissing = s.track.lags()
		if r.PropagationMissing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		pause.For(ctx, 100*time.Millisecond)
	}
	r.PropagationMs = summarize(lags)
	r.PropagationSamples = lags
	d := s.counts.snapshot().minus(before)
	k := float64(r.Endpoints)
	r.WritesPerEndpoint = float64(d.Writes) / k
	r.ReadsPerEndpoint = float64(d.Reads+d.Watches) / k
	r.BytesReadPerEndpoint = float64(d.BytesRead) / k
	r.AddBytesByKind = map[string]float64{}
	for kind, v := range s.counts.kinds() {
		if per := float64(v-kinds[kind]) / k; per > 0 {
			r.AddBytesByKind[kind] = per
		}
	}
	return nil
}

// measureQuiet counts the store traffic of an idle cluster.
func (s *sim) measureQuiet(ctx context.Context, r *simResult) {
	before, kinds := s.counts.snapshot(), s.counts.kinds()
	calls, _ := s.counts.calls.copies()
	pause.For(ctx, s.c.Quiet)
	d := s.counts.snapshot().minus(before)
	now, _ := s.counts.calls.copies()
	r.IdleCalls = diff(now, calls)
	r.IdleBytesByKind = map[string]float64{}
	for k, v := range s.counts.kinds() {
		if per := float64(v-kinds[k]) / s.c.Quiet.Seconds() / float64(len(s.hosts)); per > 0 {
			r.IdleBytesByKind[k] = per
		}
	}
	secs, n := s.c.Quiet.Seconds(), float64(len(s.hosts))
	r.IdleReadsPerHostSecond = float64(d.Reads+d.Watches) / secs / n
	r.IdleBytesPerHostSecond = float64(d.BytesRead) / secs / n
	r.IdleWritesPerHostSecond = float64(d.Writes+d.Ephemeral) / secs / n
}

// silentHosts cuts a share of hosts off from Consul while their underlay
// answers, for longer than the plugin's --dead-after and its probes: no
// other host may drop their entries. Then they come back.
func (s *sim) silentHosts(ctx context.Context, r *simResult) error {
	silent := s.pick(s.c.Silent, 0)
	if len(silent) == 0 {
		return nil
	}
	silent, r.SilentMonitors = s.withMonitors(ctx, silent, nil, 1)
	for _, h := range silent {
		h.cut(true, false)
	}
	pause.For(ctx, simAgentTimes.DeadAfter+6*time.Second)
	r.SilentHosts = len(silent)
	r.SilentEntriesDropped = s.dropped(silent, s.survivors(silent))
	for _, h := range silent {
		h.cut(false, false)
	}
	// Their heartbeats go through again before the next phase.
	pause.For(ctx, 2*simAgentTimes.HeartbeatInterval)
	return nil
}

// killHosts switches a share of hosts off and measures until every other
// host has left out their entries.
func (s *sim) killHosts(ctx context.Context, r *simResult) {
	killed := s.pick(s.c.Kill, len(s.pick(s.c.Silent, 0)))
	if len(killed) == 0 {
		return
	}
	killed, r.KilledMonitors = s.withMonitors(ctx, killed, s.pick(s.c.Silent, 0), []int{0, 1}[:s.c.KillMonitors]...)
	survivors := s.survivors(killed)
	t := time.Now()
	for _, h := range killed {
		h.cut(true, true)
	}
	r.KilledHosts = len(killed)
	for ctx.Err() == nil && time.Since(t) < time.Minute {
		if s.dropped(killed, survivors) == s.entriesOf(killed, survivors) {
			r.PurgeSeconds = time.Since(t).Seconds()
			return
		}
		pause.For(ctx, 100*time.Millisecond)
	}
	r.PurgeSeconds = -1 // not within a minute
}

// withMonitors puts the hosts holding the liveness monitor slots in place
// of the last of hosts (as many as fit), unless they are among them or in
// other: the run then cuts off or switches off monitors too. One, the
// case the other monitor covers; both at once (--kill-monitors 2), the
// case the followers must notice themselves (driver/liveness, change 30).
// It returns the hosts and how many of them are monitors.
func (s *sim) withMonitors(ctx context.Context, hosts, other []*simHost, slots ...int) ([]*simHost, int) {
	holders := map[string]bool{}
	var want []*simHost // the monitors to put in
	for i := range 2 {
		kv, err := s.hosts[0].st.s.Get(ctx, keys.Monitor(i))
		var rec liveness.Record
		if err != nil || json.Unmarshal(kv.Value, &rec) != nil {
			continue
		}
		holders[rec.Host] = true
		h := s.byID(rec.Host)
		if slices.Contains(slots, i) && h != nil && !slices.Contains(hosts, h) && !slices.Contains(other, h) {
			want = append(want, h)
		}
	}
	hosts = slices.Clone(hosts)
	for i := len(hosts) - 1; i >= 0 && len(want) > 0; i-- {
		if !holders[hosts[i].id] { // a monitor already in place stays
			hosts[i], want = want[0], want[1:]
		}
	}
	n := 0
	for _, h := range hosts {
		if holders[h.id] {
			n++
		}
	}
	return hosts, n
}

func (s *sim) byID(id string) *simHost {
	for _, h := range s.hosts {
		if h.id == id {
			return h
		}
	}
	return nil
}

// pick returns share of the hosts, after the first skip of them.
func (s *sim) pick(share float64, skip int) []*simHost {
	n := int(share*float64(len(s.hosts)) + 0.5)
	if share > 0 && n == 0 {
		n = 1
	}
	if skip+n > len(s.hosts) {
		n = len(s.hosts) - skip
	}
	// Spread over the host list: every k-th host from the end.
	var out []*simHost
	for i := range n {
		out = append(out, s.hosts[len(s.hosts)-1-skip-i])
	}
	return out
}

func (s *sim) survivors(out []*simHost) []*simHost {
	gone := map[int]bool{}
	for _, h := range out {
		gone[h.idx] = true
	}
	var keep []*simHost
	for _, h := range s.hosts {
		if !gone[h.idx] {
			keep = append(keep, h)
		}
	}
	return keep
}

// entriesOf counts the (observer, entry) pairs of hosts' VTEPs the
// observers should have programmed: one per network they share.
func (s *sim) entriesOf(hosts, observers []*simHost) int {
	n := 0
	for _, o := range observers {
		for nw := range o.nets {
			for _, h := range hosts {
				if _, ok := h.nets[nw]; ok {
					n++
				}
			}
		}
	}
	return n
}

// dropped counts the (observer, network, host) triples in which an
// observer sharing a network with one of hosts programs none of that
// host's endpoints there.
func (s *sim) dropped(hosts, observers []*simHost) int {
	n := 0
	for _, o := range observers {
		for nw, sn := range o.nets {
			vteps := map[string]bool{}
			for _, p := range o.plane.Peers(sn.vni) {
				vteps[p.VTEP.String()] = true
			}
			for _, h := range hosts {
				if _, ok := h.nets[nw]; ok && !vteps[h.vtep.String()] {
					n++
				}
			}
		}
	}
	return n
}

func (s *sim) cleanup(ctx context.Context) {
	var wg sync.WaitGroup
	for _, h := range s.hosts {
		if h == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.cut(false, false)
			h.stop()
		}()
	}
	wg.Wait()
	if err := deletePrefix(ctx, s.c.Stores[0], s.prefix); err != nil {
		s.log.WithError(err).Error("simulation keys left in Consul")
	}
}

// eachHost runs fn for every host, parallel at once.
func (s *sim) eachHost(ctx context.Context, parallel int, fn func(context.Context, *simHost) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, h := range s.hosts {
		g.Go(func() error { return fn(gctx, h) })
	}
	return g.Wait()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssBytes is the process's resident set (VmRSS), 0 if unknown.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

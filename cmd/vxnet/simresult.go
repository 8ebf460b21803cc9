package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/bench"
	"github.com/vxnet/vxnet/store/consul"
)

// stats are quantiles of a sample, in the unit of the field's name.
type stats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return stats{N: len(s), P50: q(0.5), P99: q(0.99), Max: s[len(s)-1]}
}

// simResult is one simulation run.
type simResult struct {
	When      time.Time `json:"when"`
	Hosts     int       `json:"hosts"`
	Networks  int       `json:"networks"`
	Endpoints int       `json:"endpoints"`
	Kill      float64   `json:"kill_share"`
	Silent    float64   `json:"silent_share"`
	// Parallel and CreateParallel are the hosts adding endpoints and
	// creating networks at once.
	Parallel       int `json:"parallel"`
	CreateParallel int `json:"create_parallel"`

	StartSeconds    float64 `json:"start_seconds"`
	NetworkCreateMs stats   `json:"network_create_ms"`
	EndpointAddMs   stats   `json:"endpoint_add_ms"` // RequestAddress + CreateEndpoint + Join
	CreateSeconds   float64 `json:"create_seconds"`
	AddSeconds      float64 `json:"add_seconds"`
	// CreateCalls and CreateConflicts count the store calls of the
	// network creates by call and key kind, and of those the lost
	// compare-and-sets; CreateCPU is the simulator's CPU (cores) then.
	CreateCalls     map[string]int64 `json:"create_calls"`
	CreateConflicts map[string]int64 `json:"create_conflicts"`
	CreateCPU       float64          `json:"create_cpu"`
	// AddCalls, AddConflicts and AddCPU are the same for the endpoint
	// adds and the wait for their propagation, kept when the phase fails.
	AddCalls     map[string]int64 `json:"add_calls"`
	AddConflicts map[string]int64 `json:"add_conflicts"`
	AddCPU       float64          `json:"add_cpu"`

	PropagationMs      stats     `json:"propagation_ms"` // record written → every other host of the network programmed it
	PropagationMissing int       `json:"propagation_missing"`
	PropagationSamples []float64 `json:"-"`

	WritesPerEndpoint    float64 `json:"writes_per_endpoint"`     // all hosts' store writes while endpoints were added, per endpoint
	ReadsPerEndpoint     float64 `json:"reads_per_endpoint"`      // reads and watch returns, per endpoint
	BytesReadPerEndpoint float64 `json:"bytes_read_per_endpoint"` // keys and values read, watches included

	AddBytesByKind map[string]float64 `json:"add_bytes_by_kind"` // per endpoint, by call and first key segment

	IdleReadsPerHostSecond  float64            `json:"idle_reads_per_host_second"`
	IdleBytesByKind         map[string]float64 `json:"idle_bytes_by_kind"` // per host and second
	IdleCalls               map[string]int64   `json:"idle_calls"`         // every host's calls in the idle window, by call and key kind
	IdleBytesPerHostSecond  float64            `json:"idle_bytes_per_host_second"`
	IdleWritesPerHostSecond float64            `json:"idle_writes_per_host_second"` // heartbeats

	SilentHosts          int `json:"silent_hosts"`
	SilentEntriesDropped int `json:"silent_entries_dropped"` // must be 0
	KilledHosts          int `json:"killed_hosts"`
	// SilentMonitors and KilledMonitors are how many of those hosts
	// were liveness monitors (driver/liveness): one each, where elected.
	SilentMonitors int     `json:"silent_monitors"`
	KilledMonitors int     `json:"killed_monitors"`
	PurgeSeconds   float64 `json:"purge_seconds"` // -1: not within a minute

	CPUPerHost      float64 `json:"cpu_per_host"` // CPU seconds per second per simulated host
	RSSBytesPerHost int64   `json:"rss_bytes_per_host"`
	Seconds         float64 `json:"seconds"`

	// Phase is the last phase the run reached ("done" when complete);
	// Error says what broke it ("" when it completed).
	Phase string `json:"phase"`
	Error string `json:"error,omitempty"`
}

func (r *simResult) summary() string {
	return fmt.Sprintf("%d hosts, %d networks, %d endpoints: propagation p50 %.0f ms p99 %.0f ms max %.0f ms (%d missing); %.1f writes, %.1f reads, %.0f bytes read per endpoint; idle %.0f B/s per host; silent %d hosts (%d monitors), %d entries dropped; purge of %d hosts (%d monitors) %.1f s; CPU %.3f, RSS %.1f MB per host",
		r.Hosts, r.Networks, r.Endpoints, r.PropagationMs.P50, r.PropagationMs.P99, r.PropagationMs.Max, r.PropagationMissing,
		r.WritesPerEndpoint, r.ReadsPerEndpoint, r.BytesReadPerEndpoint, r.IdleBytesPerHostSecond,
		r.SilentHosts, r.SilentMonitors, r.SilentEntriesDropped, r.KilledHosts, r.KilledMonitors, r.PurgeSeconds, r.CPUPerHost, float64(r.RSSBytesPerHost)/1e6)
}

// callsSummary names the store calls of the phases a run reached, most
// frequent first: what loaded the store, also for a run that failed.
func (r *simResult) callsSummary() string {
	var b strings.Builder
	for _, p := range []struct {
		name             string
		calls, conflicts map[string]int64
	}{{"create networks", r.CreateCalls, r.CreateConflicts}, {"add endpoints", r.AddCalls, r.AddConflicts}, {"idle", r.IdleCalls, nil}} {
		if len(p.calls) > 0 {
			fmt.Fprintf(&b, "%d hosts, store calls in %q: %s\n", r.Hosts, p.name, topCalls(p.calls, p.conflicts, 10))
		}
	}
	return b.String()
}

// simTable is the runs as a markdown table (for the README).
func simTable(runs []simResult) string {
	var b strings.Builder
	b.WriteString("| hosts | endpoints | propagation p50 / p99 / max | writes per endpoint | bytes read per endpoint | idle bytes/s per host | silent hosts' entries dropped | purge | CPU per host | RSS per host |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		if r.Error != "" {
			fmt.Fprintf(&b, "| %d | %d | failed in phase %q after %.0f s: %s |||||||\n", r.Hosts, r.Endpoints, r.Phase, r.Seconds, r.Error)
			continue
		}
		fmt.Fprintf(&b, "| %d | %d | %.0f / %.0f / %.0f ms | %.1f | %.0f | %.0f | %d of %d hosts | %.1f s (%d hosts, %d monitors) | %.3f | %.1f MB |\n",
			r.Hosts, r.Endpoints, r.PropagationMs.P50, r.PropagationMs.P99, r.PropagationMs.Max, r.WritesPerEndpoint, r.BytesReadPerEndpoint,
			r.IdleBytesPerHostSecond, r.SilentEntriesDropped, r.SilentHosts, r.PurgeSeconds, r.KilledHosts, r.KilledMonitors, r.CPUPerHost, float64(r.RSSBytesPerHost)/1e6)
	}
	return b.String()
}

// writeSimResults writes dir/scale-out.json and the propagation plot.
func writeSimResults(dir string, runs []simResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scale-out.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	p := bench.Result{Name: "propagation to every host by cluster size", Unit: "ms", When: time.Now().UTC(), Command: "make scale"}
	for _, r := range runs {
		if len(r.PropagationSamples) == 0 {
			continue
		}
		p.Series = append(p.Series, bench.Series{Name: fmt.Sprintf("%d hosts, %d endpoints", r.Hosts, r.Endpoints), Samples: r.PropagationSamples})
	}
	p.Summarize()
	return p.Write(dir, "scale-out-propagation")
}

// deletePrefix removes a run's keys from Consul.
func deletePrefix(ctx context.Context, uri, prefix string) error {
	addr, base, err := consul.ParseURI(uri)
	if err != nil {
		return err
	}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	client, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	_, err = client.KV().DeleteTree(strings.Trim(base+"/"+prefix, "/")+"/", (&api.WriteOptions{}).WithContext(ctx))
	return err
}

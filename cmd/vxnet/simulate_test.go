package main

import (
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/driver/dataplane"
)

func TestSimConfigRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--hosts", "1"}, {"--hosts", "10,x"}, {"--networks", "0"}, {"--networks", "251"},
		{"--endpoints-per-host", "0"}, {"--kill", "0.6", "--silent", "0.5"}, {"--parallel", "0"}, {"--create-parallel", "0"}, {"extra"},
		{"--kill-monitors", "3"}, {"--kill-monitors", "-1"},
	} {
		if _, err := parseSimConfig(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	c, err := parseSimConfig([]string{"--hosts", "10, 50", "--store", "consul://a:8500/x,consul://b:8500/x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Hosts) != 2 || c.Hosts[1] != 50 || len(c.Stores) != 2 {
		t.Fatalf("parsed %+v", c)
	}
}

// The propagation of an endpoint is the time until the LAST other host of
// its network programmed it; a host that never did counts as missing.
func TestTrackerLagIsTheLastHost(t *testing.T) {
	tr := newTracker()
	a, b := netip.MustParseAddr("198.19.0.5"), netip.MustParseAddr("198.19.0.6")
	t0 := time.Now()
	tr.added(a, 0, []int{1, 2}, t0)
	tr.added(b, 0, []int{1, 2}, t0)
	tr.programmed(1, []dataplane.Peer{{IP: a}, {IP: b}}, t0.Add(10*time.Millisecond))
	tr.programmed(2, []dataplane.Peer{{IP: a}}, t0.Add(30*time.Millisecond))
	tr.programmed(2, []dataplane.Peer{{IP: a}}, t0.Add(90*time.Millisecond)) // not the first time
	lags, missing := tr.lags()
	if missing != 1 || len(lags) != 1 || lags[0] < 29 || lags[0] > 31 {
		t.Fatalf("lags %v, missing %d; want [30] ms and b missing on host 2", lags, missing)
	}
}

func TestSimTableHasEveryRun(t *testing.T) {
	out := simTable([]simResult{{Hosts: 10, Endpoints: 250}, {Hosts: 50, Endpoints: 1250, PurgeSeconds: 12.1, KilledHosts: 5, KilledMonitors: 2}, {Hosts: 200, Endpoints: 5000, Phase: "add endpoints", Error: "consul timeout"}})
	if !strings.Contains(out, "| 10 | 250 |") || !strings.Contains(out, "| 50 | 1250 |") || !strings.Contains(out, `| 200 | 5000 | failed in phase "add endpoints"`) || !strings.Contains(out, "consul timeout") || !strings.Contains(out, "| 12.1 s (5 hosts, 2 monitors) |") {
		t.Fatalf("table:\n%s", out)
	}
}

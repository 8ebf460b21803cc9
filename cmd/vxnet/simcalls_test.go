package main

import (
	"fmt"
	"maps"
	"testing"

	"github.com/vxnet/vxnet/store"
)

// Calls are counted by call and key kind, lost compare-and-sets apart,
// and a phase's figures are the difference of two copies.
func TestCallCounts(t *testing.T) {
	var c callCounts
	c.add("get", "networks/198.19.0.0_22", nil)
	before, _ := c.copies()
	c.add("cas", "ipam/subnets", nil)
	c.add("cas", "ipam/subnets", fmt.Errorf("cas %q: %w", "ipam/subnets", store.ErrConflict))
	c.add("list", "endpoints/198.19.0.0_22/", store.ErrUnavailable)
	now, lost := c.copies()
	want := map[string]int64{"cas pool index": 2, "list endpoints/": 1}
	if got := diff(now, before); !maps.Equal(got, want) {
		t.Errorf("calls since the copy = %v; want %v", got, want)
	}
	if want := map[string]int64{"cas pool index": 1}; !maps.Equal(lost, want) {
		t.Errorf("lost CAS = %v; want %v", lost, want)
	}
}

// A phase's calls are kept when the phase fails, and the summary names
// the most frequent first with their lost compare-and-sets.
func TestPhaseCallsKeptOnFailure(t *testing.T) {
	s := &sim{}
	s.counts.calls.add("get", "networks/198.19.0.0_22", nil)
	r := &simResult{Hosts: 100}
	phase := func() error {
		defer s.countPhase(&r.AddCalls, &r.AddConflicts, &r.AddCPU)()
		s.counts.calls.add("get", "networks/198.19.0.0_22", nil)
		s.counts.calls.add("watch", "changes/198.19.0.0_22", nil)
		s.counts.calls.add("watch", "changes/198.19.0.0_22", nil)
		s.counts.calls.add("cas", "changes/198.19.0.0_22", fmt.Errorf("cas: %w", store.ErrConflict))
		return store.ErrUnavailable
	}
	if err := phase(); err == nil {
		t.Fatal("phase did not fail")
	}
	if want := map[string]int64{"get network": 1, "watch endpoint changes": 2, "cas endpoint changes": 1}; !maps.Equal(r.AddCalls, want) {
		t.Errorf("add calls = %v; want %v", r.AddCalls, want)
	}
	want := `100 hosts, store calls in "add endpoints": watch endpoint changes 2, cas endpoint changes 1 (1 lost), get network 1` + "\n"
	if got := r.callsSummary(); got != want {
		t.Errorf("summary = %q; want %q", got, want)
	}
}

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

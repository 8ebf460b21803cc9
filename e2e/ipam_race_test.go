package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vxnet/vxnet/e2e/harness"
)

// raceCreate runs `docker network create` for each host's subnet on all
// of them at the same moment and returns each host's output and error.
// Every network that was created is removed when the test ends.
func raceCreate(t *testing.T, e *multiHost, hosts []*harness.Host, name string, subnets []string) ([]string, []error) {
	t.Helper()
	outs, errs := make([]string, len(hosts)), make([]error, len(hosts))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			outs[i], errs[i] = h.Docker("network", "create", "-d", e.driver, "--ipam-driver", e.driver, "--subnet", subnets[i], name)
		}()
	}
	close(start)
	wg.Wait()
	for i, h := range hosts {
		if errs[i] == nil {
			t.Cleanup(func() {
				if err := removeNetwork(h, name); err != nil {
					t.Error(err)
				}
			})
		}
	}
	return outs, errs
}

// testOverlapRace: two hosts create networks on overlapping different
// subnets at the same moment: exactly one create succeeds and the other
// fails naming both subnets (the IPAM's subnet index decides by one CAS).
// The same subnet created on two hosts at once succeeds on both. The
// leak checker after the case finds the loser left nothing.
func testOverlapRace(t *testing.T, e *multiHost) {
	hosts := []*harness.Host{e.host(1), e.host(2)}
	subnets := []string{"198.19.40.0/24", "198.19.40.0/23"}
	for round := range 3 {
		t.Run(fmt.Sprintf("overlap-%d", round), func(t *testing.T) {
			order := []string{subnets[round%2], subnets[1-round%2]}
			outs, errs := raceCreate(t, e, hosts, "overlap", order)
			if (errs[0] == nil) == (errs[1] == nil) {
				t.Fatalf("creates of %v on %s and %s: %v / %v; want exactly one to succeed", order, hosts[0].Name, hosts[1].Name, errs[0], errs[1])
			}
			loser := 0
			if errs[1] != nil {
				loser = 1
			}
			msg := outs[loser] + " " + errs[loser].Error()
			t.Logf("%s refused %s: %s", hosts[loser].Name, order[loser], outs[loser])
			if !strings.Contains(msg, "overlaps") || !strings.Contains(msg, subnets[0]) || !strings.Contains(msg, subnets[1]) {
				t.Errorf("%s's error does not name both subnets: %s", hosts[loser].Name, msg)
			}
		})
	}
	t.Run("same-subnet", func(t *testing.T) {
		_, errs := raceCreate(t, e, hosts, "same", []string{"198.19.41.0/24", "198.19.41.0/24"})
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: create of the subnet another host creates at once: %v", hosts[i].Name, err)
			}
		}
	})
}

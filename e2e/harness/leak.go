package harness

import (
	"fmt"
	"strings"
	"testing"
)

type leakCheck struct {
	name  string
	check func(h *Host) error
}

// AddLeakCheck registers a check LeakCheck runs on every host; it returns
// an error naming what leaked (store keys, FDB entries, netns files of the
// plugin...).
func (c *Cluster) AddLeakCheck(name string, check func(h *Host) error) {
	c.checksMu.Lock()
	defer c.checksMu.Unlock()
	c.leakChecks = append(c.leakChecks, leakCheck{name: name, check: check})
}

// LeakCheck reports with t.Errorf every leak on every host. Call it at the
// end of a test, after its containers and networks are gone. The built-in
// check wants the host's links to be those present right after dockerd
// started (lo, eth0, docker0); checks added with AddLeakCheck run after it.
func (c *Cluster) LeakCheck(t testing.TB) {
	t.Helper()
	c.checksMu.Lock()
	checks := append([]leakCheck{{name: "links", check: (*Host).linkLeaks}}, c.leakChecks...)
	c.checksMu.Unlock()
	for _, h := range c.Hosts {
		for _, lc := range checks {
			if err := lc.check(h); err != nil {
				t.Errorf("leak check %q on %s: %v", lc.name, h.Name, err)
			}
		}
	}
}

// linkLeaks returns an error naming links that were not there at start,
// other than Docker's own docker_gwbridge.
func (h *Host) linkLeaks() error {
	now, err := h.Links()
	if err != nil {
		return err
	}
	h.mu.Lock()
	base := make(map[string]bool, len(h.baseLinks))
	for _, l := range h.baseLinks {
		base[l] = true
	}
	h.mu.Unlock()
	var extra []string
	for _, l := range now {
		// dockerd makes docker_gwbridge on the first container that needs
		// egress through it and keeps it, as it keeps docker0.
		if !base[l] && l != "docker_gwbridge" {
			extra = append(extra, l)
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("links not there at start: %s", strings.Join(extra, ", "))
	}
	return nil
}

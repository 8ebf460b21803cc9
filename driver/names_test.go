package driver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"
)

// namesSeen records what OnEndpoints last got per network.
type namesSeen struct {
	mu   sync.Mutex
	last map[string][]Endpoint
	set  map[string]bool
}

func (s *namesSeen) hook(key string, eps []Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[key], s.set[key] = eps, eps != nil
}

// wait polls until the names of key's endpoints read want ("ep:name,name;…",
// "" for none, "dropped" once the network is no longer fed).
func (s *namesSeen) wait(t *testing.T, key, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := "dropped"
		if s.set[key] {
			var parts []string
			for _, ep := range s.last[key] {
				parts = append(parts, ep.ID[:3]+":"+strings.Join(ep.Names, ","))
			}
			got = strings.Join(parts, ";")
		}
		s.mu.Unlock()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("names of network %s = %q, want %q", key, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Names written by the endpoint's host reach the other host's
// OnEndpoints; a gone host's endpoints are left out; only the owner may
// write; the network's removal drops it.
func TestNamesTravel(t *testing.T) {
	e1, e2 := sharedNetwork(t)
	ctx := context.Background()
	seen := &namesSeen{last: map[string][]Endpoint{}, set: map[string]bool{}}
	e2.d.StopWatches() // before the hook is set: the watchers read it
	e2.d.o.OnEndpoints = seen.hook
	if err := e2.d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	nets, err := e1.d.LocalNetworks(ctx)
	if err != nil || len(nets) != 1 || nets[net1] == "" {
		t.Fatalf("LocalNetworks of h1 = %v, %v; want net1 only", nets, err)
	}
	key := nets[net1]
	seen.wait(t, key, "aaa:")
	if ok, err := e1.d.SetNames(ctx, net1, ep1, []string{"test1", "web"}); !ok || err != nil {
		t.Fatalf("SetNames = %v, %v; want written", ok, err)
	}
	seen.wait(t, key, "aaa:test1,web")
	if ok, err := e1.d.SetNames(ctx, net1, ep1, []string{"test1", "web"}); !ok || err != nil {
		t.Fatalf("rewriting the same names: %v, %v; want true, nil", ok, err)
	}
	_, err = e2.d.SetNames(ctx, net2, ep1, []string{"stolen"})
	wantErr(t, err, "belongs to host h1")
	if ok, err := e1.d.SetNames(ctx, net1, ep2, []string{"x"}); ok || err != nil {
		t.Fatalf("names of an endpoint without a record: %v, %v; want false, nil", ok, err)
	}
	if slices.ContainsFunc(e1.keys(), func(k string) bool { return strings.HasSuffix(k, ep2) }) {
		t.Fatal("SetNames of a missing endpoint created its record")
	}
	e2.d.SetGone(map[string]bool{"h1": true})
	seen.wait(t, key, "")
	e2.d.SetGone(map[string]bool{})
	seen.wait(t, key, "aaa:test1,web")
	if err := e2.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net2}); err != nil {
		t.Fatal(err)
	}
	seen.wait(t, key, "dropped")
}

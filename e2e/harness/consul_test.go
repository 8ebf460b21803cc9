package harness

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestConsulNode starts the Consul node next to one host, writes a key,
// and checks that the key survives a stop and a kill (a real server with a
// data dir, not -dev), that a host reaches the node over the underlay, and
// that teardown leaves nothing.
func TestConsulNode(t *testing.T) {
	Require(t)
	t.Run("cluster", func(t *testing.T) {
		c := Start(t, 1)
		cs := c.StartConsul(t)
		put(t, cs, "vxe2e-probe/a", "1")
		put(t, cs, "vxe2e-probe/b/c", "2")
		want := []string{"vxe2e-probe/a", "vxe2e-probe/b/c"}
		check := func(when string) {
			t.Helper()
			got, err := cs.Keys("vxe2e-probe/")
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("keys %s: %q (%v), want %q", when, got, err, want)
			}
		}
		check("after put")
		if got, err := cs.Keys("vxe2e-none/"); err != nil || len(got) != 0 {
			t.Fatalf("keys of an empty prefix: %q (%v)", got, err)
		}
		// A host reaches the HTTP API over the underlay.
		c.Hosts[0].MustExec(t, "busybox", "wget", "-q", "-O", "/dev/null", "http://"+cs.Addr()+"/v1/status/leader")

		for _, stop := range []struct {
			name string
			fn   func() error
		}{{"stop", cs.Stop}, {"kill", cs.Kill}} {
			began := time.Now()
			if err := stop.fn(); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.Keys("vxe2e-probe/"); err == nil {
				t.Fatalf("consul answers after %s", stop.name)
			}
			cs.Start(t)
			t.Logf("%s and start again: %s", stop.name, time.Since(began).Round(time.Millisecond))
			check("after " + stop.name + " and start")
		}
		if err := c.Close(); err != nil {
			t.Fatalf("teardown: %v", err)
		}
	})
	unlock := lockForTest(t)
	defer unlock()
	assertNothingLeft(t)
}

func put(t *testing.T, cs *Consul, key, value string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+cs.Addr()+"/v1/kv/"+key, strings.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := consulClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s", key, resp.Status)
	}
}

// TestConsulCluster starts three servers and a client agent on each of two
// hosts, writes through one host's agent and reads through the other's,
// kills the leader and checks that another server leads and the key is
// still there, restarts the killed server, and that teardown leaves
// nothing.
func TestConsulCluster(t *testing.T) {
	Require(t)
	t.Run("cluster", func(t *testing.T) {
		c := Start(t, 2)
		cc := c.StartConsulCluster(t)
		a, b := cc.Client(c.Hosts[0]), cc.Client(c.Hosts[1])
		put(t, a, "vxe2e-probe/k", "v")
		if got, err := b.Keys("vxe2e-probe/"); err != nil || len(got) != 1 {
			t.Fatalf("keys through the other host's agent: %q (%v)", got, err)
		}
		// A host's plugin reaches its own agent on loopback.
		c.Hosts[0].MustExec(t, "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8500/v1/status/leader")
		leader, err := cc.WaitLeader(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if err := leader.Kill(); err != nil {
			t.Fatal(err)
		}
		next, err := cc.WaitLeader(30 * time.Second)
		if err != nil || next == leader {
			t.Fatalf("after killing leader %s: leader %v, %v", leader.Name, next, err)
		}
		t.Logf("leader %s killed, %s leads after %s", leader.Name, next.Name, time.Since(began).Round(time.Millisecond))
		// An agent routes to the dead server until gossip has noticed:
		// clients retry for a few seconds (as vxnet's store does).
		var got []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if got, err = b.Keys("vxe2e-probe/"); (err == nil && len(got) == 1) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || len(got) != 1 {
			t.Fatalf("keys after the leader change: %q (%v)", got, err)
		}
		t.Logf("key read through the other agent %s after the kill", time.Since(began).Round(time.Millisecond))
		leader.Start(t)
		if err := c.Close(); err != nil {
			t.Fatalf("teardown: %v", err)
		}
	})
	unlock := lockForTest(t)
	defer unlock()
	assertNothingLeft(t)
}

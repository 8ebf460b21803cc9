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

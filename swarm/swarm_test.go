package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/dockerapi"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// fakeDocker serves the three API paths the package reads on a unix
// socket, from JSON the test sets.
type fakeDocker struct {
	mu         sync.Mutex
	manager    bool
	services   string // GET /services answer
	containers string // GET /containers/json answer
	filters    []string
}

func (f *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/info":
		json.NewEncoder(w).Encode(map[string]any{"Swarm": map[string]any{"ControlAvailable": f.manager}})
	case "/services":
		if !f.manager {
			http.Error(w, `{"message":"This node is not a swarm manager."}`, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(f.services))
	case "/containers/json":
		f.filters = append(f.filters, r.URL.Query().Get("all")+" "+r.URL.Query().Get("filters"))
		w.Write([]byte(f.containers))
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeDocker) set(fn func(*fakeDocker)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func startFake(t *testing.T) (*fakeDocker, *Docker, store.Store) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDocker{services: "[]", containers: "[]"}
	srv := &http.Server{Handler: f}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	st, err := bolt.Open(filepath.Join(dir, "vxnet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return f, testDocker(t, sock), st
}

// testDocker is the package's Docker reads on the unix socket sock.
func testDocker(t *testing.T, sock string) *Docker {
	t.Helper()
	api, err := dockerapi.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	return NewDocker(api)
}

func testLog() *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

const twoServices = `[
 {"ID":"s1","Spec":{"Name":"web","TaskTemplate":{"Networks":[{"Target":"n1"}]},"EndpointSpec":{"Mode":"vip"}},
  "Endpoint":{"VirtualIPs":[{"NetworkID":"n1","Addr":"198.19.4.2/24"},{"NetworkID":"ingress1"}]}},
 {"ID":"s2","Spec":{"Name":"db","TaskTemplate":{"Networks":[{"Target":"n1"}]},"EndpointSpec":{"Mode":"dnsrr"}}},
 {"ID":"s3","Spec":{"Name":"old","Networks":[{"Target":"n2"}]}}
]`

func TestCensusSync(t *testing.T) {
	f, dk, st := startFake(t)
	ctx := context.Background()
	c := &Census{Store: st, Docker: dk, Log: testLog()}
	f.set(func(f *fakeDocker) { f.services = twoServices })
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if kvs, _, _ := st.List(ctx, Prefix); len(kvs) != 0 {
		t.Fatalf("a worker wrote %d records", len(kvs))
	}
	f.set(func(f *fakeDocker) { f.manager = true })
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]Record{
		"s1": {Name: "web", Mode: ModeVIP, Networks: []string{"n1", "ingress1"}},
		"s2": {Name: "db", Mode: ModeDNSRR, Networks: []string{"n1"}},
		"s3": {Name: "old", Mode: ModeVIP, Networks: []string{"n2"}}, // no EndpointSpec: Docker's default
	}
	if got := records(t, st); !reflect.DeepEqual(got, want) {
		t.Fatalf("records %+v, want %+v", got, want)
	}
	f.set(func(f *fakeDocker) { f.services = `[{"ID":"s2","Spec":{"Name":"db","EndpointSpec":{"Mode":"dnsrr"}}}]` })
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := records(t, st); len(got) != 1 || got["s2"].Mode != ModeDNSRR || got["s2"].Networks != nil {
		t.Fatalf("after removal of s1 and s3 and s2 leaving its network: %+v", got)
	}
}

func records(t *testing.T, st store.Store) map[string]Record {
	t.Helper()
	kvs, _, err := st.List(context.Background(), Prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Record{}
	for _, kv := range kvs {
		var r Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(kv.Key, Prefix)] = r
	}
	return out
}

// task is one task container in the fake's list.
func task(id, service, name string, created int64, netName, netID, addr string) string {
	b, _ := json.Marshal(map[string]any{
		"Id": id, "Created": created,
		"Labels": map[string]string{labelServiceID: service, labelServiceName: name},
		"NetworkSettings": map[string]any{"Networks": map[string]any{
			netName: map[string]any{"NetworkID": netID, "IPAddress": "", "IPAMConfig": map[string]string{"IPv4Address": addr}},
		}},
	})
	return string(b)
}

func TestGuardAdmit(t *testing.T) {
	f, dk, st := startFake(t)
	ctx := context.Background()
	for id, r := range map[string]Record{"s1": {Name: "web", Mode: ModeVIP}, "s2": {Name: "db", Mode: ModeDNSRR}} {
		if err := store.PutJSON(ctx, st, Key(id), r); err != nil {
			t.Fatal(err)
		}
	}
	g := &Guard{Store: st, Docker: dk, Wait: 300 * time.Millisecond, Log: testLog()}
	addr := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	cases := []struct {
		name       string
		containers []string
		net        string
		addrs      []netip.Prefix
		refuse     bool
	}{
		{"task of a vip service", []string{task("c1", "s1", "web", 10, "sw", "n1", "198.19.4.5")}, "n1", addr("198.19.4.5/24"), true},
		{"task of a dnsrr service", []string{task("c1", "s2", "db", 10, "sw", "n1", "198.19.4.5")}, "n1", addr("198.19.4.5/24"), false},
		{"no task has the address", []string{task("c1", "s1", "web", 10, "sw", "n1", "198.19.4.6")}, "n1", addr("198.19.4.5/24"), false},
		{"the address on another network", []string{task("c1", "s1", "web", 10, "other", "n9", "198.19.4.5")}, "n1", addr("198.19.4.5/24"), false},
		{"newest container of the address wins: dnsrr", []string{
			task("old", "s1", "web", 10, "sw", "n1", "198.19.4.5"), task("new", "s2", "db", 20, "sw", "n1", "198.19.4.5")}, "n1", addr("198.19.4.5/24"), false},
		{"newest container of the address wins: vip", []string{
			task("new", "s1", "web", 30, "sw", "n1", "198.19.4.5"), task("old", "s2", "db", 20, "sw", "n1", "198.19.4.5")}, "n1", addr("198.19.4.5/24"), true},
		{"service without a record: admitted after the wait", []string{task("c1", "s7", "new", 10, "sw", "n1", "198.19.4.5")}, "n1", addr("198.19.4.5/24"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.set(func(f *fakeDocker) { f.containers = "[" + strings.Join(tc.containers, ",") + "]" })
			start := time.Now()
			err := g.Admit(ctx, tc.net, tc.addrs)
			if !tc.refuse {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrVIPMode) {
				t.Fatalf("admitted (err %v), want a refusal", err)
			}
			for _, s := range []string{`service "web"`, `network "sw"`, "--endpoint-mode dnsrr", "endpoint_mode: dnsrr"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("refusal %q does not name %s", err, s)
				}
			}
			if time.Since(start) > 200*time.Millisecond {
				t.Errorf("a recorded service took %s to judge", time.Since(start))
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.filters) == 0 || f.filters[0] != `1 {"label":["`+labelServiceID+`"]}` {
		t.Errorf("container list asked with %q, want all task containers by label", f.filters)
	}
}

func TestGuardWaitsForTheCensus(t *testing.T) {
	f, dk, st := startFake(t)
	ctx := context.Background()
	f.set(func(f *fakeDocker) {
		f.manager = true
		f.services = twoServices
		f.containers = "[" + task("c1", "s1", "web", 10, "sw", "n1", "198.19.4.5") + "]"
	})
	g := &Guard{Store: st, Docker: dk, Wait: 5 * time.Second, Log: testLog()}
	c := &Census{Store: st, Docker: dk, Log: testLog()}
	go func() {
		time.Sleep(500 * time.Millisecond)
		if err := c.Sync(ctx); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	err := g.Admit(ctx, "n1", []netip.Prefix{netip.MustParsePrefix("198.19.4.5/24")})
	if !errors.Is(err, ErrVIPMode) {
		t.Fatalf("admitted (err %v) a task whose service the census recorded during the wait", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 2*time.Second {
		t.Errorf("judged after %s, want soon after the census ran (0.5 s)", d)
	}
}

func TestGuardWithoutDocker(t *testing.T) {
	_, _, st := startFake(t)
	g := &Guard{Store: st, Docker: testDocker(t, filepath.Join(t.TempDir(), "none.sock")), Log: testLog()}
	if err := g.Admit(context.Background(), "n1", []netip.Prefix{netip.MustParsePrefix("198.19.4.5/24")}); err != nil {
		t.Fatalf("refused without a Docker API to ask: %v", err)
	}
}

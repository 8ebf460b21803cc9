package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/driver/liveness"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/keys"
)

const (
	epLocal  = "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000000"
	epRemote = "bbbbbbbbbbbb0000000000000000000000000000000000000000000000000000"
)

// statusStore is a cluster of two hosts, h1 (this one) and h2, with one
// network (VNI 100) and one endpoint on each; h2's heartbeat is beat.
// Its file is at the returned path.
func statusStore(t *testing.T, now, beat time.Time) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	put := func(key string, v any) {
		if err := store.PutJSON(ctx, st, key, v); err != nil {
			t.Fatal(err)
		}
	}
	put(keys.Network("k1"), driver.Network{Key: "k1", VNI: 100, Subnets: []netip.Prefix{netip.MustParsePrefix("198.19.1.0/24"), netip.MustParsePrefix("fd00:1::/64")},
		Hosts: map[string]string{"h1": "1111111111111111", "h2": "2222222222222222"}})
	put(keys.Endpoint("k1", epLocal), driver.Endpoint{ID: epLocal, Network: "k1", Host: "h1", VTEP: netip.MustParseAddr("198.18.0.1"),
		Addrs: []netip.Prefix{netip.MustParsePrefix("198.19.1.2/24")}, MAC: "02:00:00:00:00:01"})
	put(keys.Endpoint("k1", epRemote), driver.Endpoint{ID: epRemote, Network: "k1", Host: "h2", VTEP: netip.MustParseAddr("198.18.0.2"),
		Addrs: []netip.Prefix{netip.MustParsePrefix("198.19.1.3/24"), netip.MustParsePrefix("fd00:1::3/64")}, MAC: "02:00:00:00:00:02"})
	put(keys.Heartbeat("h1"), liveness.Heartbeat{Beat: 1, At: now})
	put(keys.Heartbeat("h2"), liveness.Heartbeat{Beat: 1, At: beat})
	put(keys.Monitor(0), liveness.Record{Host: "h1", Healthy: true, Alive: []string{"h1"}})
	put(keys.Monitor(1), liveness.Record{Host: "h2"})
	return st, path
}

// matchingKernel is what h1's plugin programs for statusStore.
func matchingKernel() []dataplane.NetworkState {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	vtep := netip.MustParseAddr("198.18.0.2")
	return []dataplane.NetworkState{{
		VNI: 100, Netns: "/run/vxnet/netns/vx-100", Bridge: true, VXLAN: true, Ports: []string{epLocal[:12]},
		Neigh: map[netip.Addr]net.HardwareAddr{netip.MustParseAddr("198.19.1.3"): mac, netip.MustParseAddr("fd00:1::3"): mac},
		FDB:   []dataplane.FDBEntry{{MAC: mac, VTEP: vtep}}, Flood: []netip.Addr{vtep}, Master: []net.HardwareAddr{mac},
	}}
}

func TestStatusDrift(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name   string
		beat   time.Time // of h2
		kernel func(k []dataplane.NetworkState) []dataplane.NetworkState
		drift  []string
		notes  int
	}{
		{"match", now, func(k []dataplane.NetworkState) []dataplane.NetworkState { return k }, nil, 0},
		{"fdb entry deleted", now, func(k []dataplane.NetworkState) []dataplane.NetworkState { k[0].FDB = nil; return k },
			[]string{"vni 100: fdb 02:00:00:00:00:02 dst 198.18.0.2 on vxlan0 missing (endpoint of host h2)"}, 0},
		{"ipv6 neighbour deleted", now, func(k []dataplane.NetworkState) []dataplane.NetworkState {
			delete(k[0].Neigh, netip.MustParseAddr("fd00:1::3"))
			return k
		}, []string{"vni 100: neighbour fd00:1::3 lladdr 02:00:00:00:00:02 on vxlan0 missing (endpoint of host h2)"}, 0},
		{"silent host's entries left out", now.Add(-time.Minute), func(k []dataplane.NetworkState) []dataplane.NetworkState {
			k[0].FDB, k[0].Neigh, k[0].Flood, k[0].Master = nil, nil, nil, nil
			return k
		}, nil, 5},
		{"stale entry and port, extra namespace", now, func(k []dataplane.NetworkState) []dataplane.NetworkState {
			k[0].Master = append(k[0].Master, net.HardwareAddr{2, 0, 0, 0, 0, 9})
			k[0].Ports = append(k[0].Ports, "cccccccccccc")
			return append(k, dataplane.NetworkState{VNI: 200, Netns: "/x/vx-200", Bridge: true, VXLAN: true})
		}, []string{
			"network k1 (vni 100): port vxpcccccccccccc on br0 has no endpoint record of this host",
			"vni 100: bridge fdb 02:00:00:00:00:09 master br0 on vxlan0 present, but no endpoint record wants it",
			"vni 200: namespace /x/vx-200 exists, but the store gives host h1 no network with this VNI",
		}, 0},
		{"namespace gone", now, func([]dataplane.NetworkState) []dataplane.NetworkState { return nil },
			[]string{"network k1 (vni 100): namespace vx-100 missing"}, 0},
		{"links and port gone", now, func(k []dataplane.NetworkState) []dataplane.NetworkState {
			k[0].VXLAN, k[0].Ports = false, nil
			return k
		}, []string{
			"network k1 (vni 100): vxlan0 missing or not a port of br0",
			"network k1 (vni 100): endpoint aaaaaaaaaaaa has no port vxpaaaaaaaaaaaa on br0",
		}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := statusStore(t, now, tt.beat)
			s, err := readCluster(context.Background(), st, "h1", 10*time.Second, now)
			if err != nil {
				t.Fatal(err)
			}
			got := checkDrift(s, tt.kernel(matchingKernel()))
			if !slices.Equal(got, append([]string{}, tt.drift...)) {
				t.Errorf("drift:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.drift, "\n"))
			}
			if len(s.Notes) != tt.notes {
				t.Errorf("notes %q, want %d", s.Notes, tt.notes)
			}
		})
	}
}

func TestStatusOutput(t *testing.T) {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	st, _ := statusStore(t, now, now.Add(-time.Minute))
	s, err := readCluster(context.Background(), st, "h1", 10*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	s.Drift = checkDrift(s, matchingKernel())
	var b bytes.Buffer
	if err := s.print(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"HOST  STATE   LAST HEARTBEAT        VTEPS       NETWORKS  ENDPOINTS\n",
		"h1    alive   2026-11-30T08:00:00Z  198.18.0.1  1         1\n",
		"h2    silent  2026-11-30T07:59:00Z  198.18.0.2  1         1\n",
		"liveness monitors: h1 (liveness/0), h2 (liveness/1, not healthy)\n",
		"k1       100  198.19.1.0/24,fd00:1::/64  h1,h2  2\n",
		"bbbbbbbbbbbb  k1       h2    198.19.1.3/24,fd00:1::3/64  02:00:00:00:00:02  -\n",
		"drift on host h1: none",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	if err := s.only("fd00:1::/64"); err != nil || len(s.Networks) != 1 || len(s.Endpoints) != 2 {
		t.Errorf("only by subnet: %v, %+v", err, s.Networks)
	}
	if err := s.only("198.19.9.0/24"); err == nil || !strings.Contains(err.Error(), `no network "198.19.9.0/24"`) {
		t.Errorf("only an unknown subnet: %v", err)
	}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"host":"h1"`, `"state":"silent"`, `"vni":100`, `"drift":[]`, `"mac":"02:00:00:00:00:01"`, `"monitors":[{"slot":"liveness/0","host":"h1","healthy":true}`} {
		if !strings.Contains(string(j), key) {
			t.Errorf("JSON lacks %s: %s", key, j)
		}
	}
}

func TestStatusFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	var out, errOut bytes.Buffer
	f, err := parseStatusFlags([]string{"network", "198.19.1.0/24", "--json", "--host-id", "h1"}, env(map[string]string{"VXNET_STORE": "consul://c:8500/p", "VXNET_NETNS_DIR": "/n"}), &errOut)
	if err != nil || f.Network != "198.19.1.0/24" || !f.JSON || f.Store != "consul://c:8500/p" || f.NetnsDir != "/n" || f.HostID != "h1" {
		t.Fatalf("%+v, %v", f, err)
	}
	if _, err := parseStatusFlags([]string{"--host-id-file", "/nonexistent/host-id"}, env(nil), &errOut); err == nil || !strings.Contains(err.Error(), "/nonexistent/host-id") {
		t.Errorf("missing host ID file: %v", err)
	}
	if code := statusCmd([]string{"network"}, env(nil), &out, &errOut); code != 2 {
		t.Errorf("status network without a name: exit %d", code)
	}
	missing := filepath.Join(t.TempDir(), "none.db")
	errOut.Reset()
	if code := statusCmd([]string{"--store", "bolt://" + missing, "--host-id", "h1"}, env(nil), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), missing) {
		t.Errorf("status on a missing bolt file: exit %d: %s", code, errOut.String())
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("status created the bolt file %s: %v", missing, err)
	}
}

// TestStatusCmd runs the command on a bolt store with no namespaces here:
// the network's missing namespace is drift, exit 3, in text and JSON.
func TestStatusCmd(t *testing.T) {
	now := time.Now()
	st, path := statusStore(t, now, now)
	st.Close()
	env := func(string) string { return "" }
	args := []string{"--store", "bolt://" + path, "--netns-dir", filepath.Join(t.TempDir(), "netns"), "--host-id", "h1"}
	var out, errOut bytes.Buffer
	if code := statusCmd(args, env, &out, &errOut); code != statusDrift || !strings.Contains(out.String(), "network k1 (vni 100): namespace vx-100 missing") {
		t.Errorf("exit %d, want %d:\n%s%s", code, statusDrift, out.String(), errOut.String())
	}
	out.Reset()
	if code := statusCmd(append([]string{"network", "k1", "--json"}, args...), env, &out, &errOut); code != statusDrift {
		t.Errorf("--json: exit %d: %s", code, errOut.String())
	}
	var s Status
	if err := json.Unmarshal(out.Bytes(), &s); err != nil || len(s.Drift) != 1 || len(s.Hosts) != 2 || len(s.Endpoints) != 2 {
		t.Errorf("--json: %+v, %v", s, err)
	}
}

package driver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// rec is an endpoint record as the store lists it.
func rec(index uint64, id, host, vtep, mac string, addrs ...string) store.KV {
	ep := Endpoint{ID: id, Network: "198.19.1.0_24", Host: host, VTEP: netip.MustParseAddr(vtep), MAC: mac}
	for _, a := range addrs {
		ep.Addrs = append(ep.Addrs, netip.MustParsePrefix(a))
	}
	b, _ := json.Marshal(ep)
	return store.KV{Key: keys.Endpoint(ep.Network, id), Value: b, ModifyIndex: index}
}

// countHook counts log entries at error level.
type countHook struct{ n int }

func (h *countHook) Levels() []logrus.Level { return []logrus.Level{logrus.ErrorLevel} }
func (h *countHook) Fire(*logrus.Entry) error {
	h.n++
	return nil
}

// peerDriver is a Driver of host id with VTEP vtep, for peers() alone.
func peerDriver(id, vtep string) (*Driver, *countHook) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	h := &countHook{}
	l.AddHook(h)
	return &Driver{o: Options{HostID: id, VTEP: netip.MustParseAddr(vtep), Log: logrus.NewEntry(l)}}, h
}

func peerStrings(ps []dataplane.Peer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s=%s@%s", p.IP, p.MAC, p.VTEP))
	}
	slices.Sort(out)
	return out
}

// hosts of the conflict tests: ID → VTEP.
var peerHosts = [][2]string{{"h1", "198.18.0.11"}, {"h2", "198.18.0.12"}, {"h3", "198.18.0.13"}}

// One conflicting pair of records never stops a network's peer updates:
// every host drops the same record (the later write; on a tie the higher
// endpoint ID), programs the rest, and logs the conflict once.
func TestPeersDropConflictsAlike(t *testing.T) {
	const (
		epA = "a000000000000000000000000000000000000000000000000000000000000000"
		epB = "b000000000000000000000000000000000000000000000000000000000000000"
		epC = "c000000000000000000000000000000000000000000000000000000000000000"
		m1  = "02:00:00:00:00:01"
		m2  = "02:00:00:00:00:02"
	)
	for _, tt := range []struct {
		name      string
		kvs       []store.KV
		kept      []string // endpoints programmed, on hosts other than their own
		conflicts int
	}{
		{"same MAC on two hosts", []store.KV{
			rec(7, epA, "h2", "198.18.0.12", m1, "198.19.1.2/24"),
			rec(5, epB, "h3", "198.18.0.13", m1, "198.19.1.3/24"),
		}, []string{epB}, 1},
		{"one address, two MACs (static address accepted twice)", []store.KV{
			rec(9, epA, "h2", "198.18.0.12", m1, "198.19.1.5/24"),
			rec(4, epB, "h3", "198.18.0.13", m2, "198.19.1.5/24"),
			rec(6, epC, "h3", "198.18.0.13", "02:00:00:00:00:03", "198.19.1.6/24"),
		}, []string{epB, epC}, 1},
		{"same index: lower endpoint ID", []store.KV{
			rec(3, epB, "h2", "198.18.0.12", m1, "198.19.1.2/24"),
			rec(3, epA, "h3", "198.18.0.13", m1, "198.19.1.3/24"),
		}, []string{epA}, 1},
		{"against an endpoint of the reading host", []store.KV{
			rec(1, epA, "h1", "198.18.0.11", m1, "198.19.1.2/24"),
			rec(2, epB, "h2", "198.18.0.12", m1, "198.19.1.3/24"),
		}, []string{epA}, 1},
		{"dual-stack record against a v4 one", []store.KV{
			rec(2, epA, "h2", "198.18.0.12", m1, "198.19.1.2/24", "fd00::2/64"),
			rec(8, epB, "h3", "198.18.0.13", m2, "fd00::2/64"),
		}, []string{epA}, 1},
		{"no conflict", []store.KV{
			rec(1, epA, "h2", "198.18.0.12", m1, "198.19.1.2/24"),
			rec(2, epB, "h3", "198.18.0.13", m2, "198.19.1.3/24"),
		}, []string{epA, epB}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, h := range peerHosts {
				d, logs := peerDriver(h[0], h[1])
				var want []dataplane.Peer
				for _, kv := range tt.kvs {
					var ep Endpoint
					if err := store.Decode(kv, &ep); err != nil {
						t.Fatal(err)
					}
					if slices.Contains(tt.kept, ep.ID) && ep.Host != h[0] {
						want = append(want, d.peers([]store.KV{kv}, map[string]bool{})...)
					}
				}
				logged := map[string]bool{}
				for _, order := range [][]store.KV{tt.kvs, reversed(tt.kvs), tt.kvs} {
					got := d.peers(order, logged)
					if err := dataplane.ValidatePeers(1, got); err != nil {
						t.Fatalf("%s: peers fail the data plane's check: %v", h[0], err)
					}
					if g, w := peerStrings(got), peerStrings(want); !slices.Equal(g, w) {
						t.Fatalf("%s: peers %v, want %v", h[0], g, w)
					}
				}
				if logs.n != tt.conflicts {
					t.Fatalf("%s: %d conflicts logged over three updates, want %d (once each)", h[0], logs.n, tt.conflicts)
				}
			}
		})
	}
}

func reversed(kvs []store.KV) []store.KV {
	out := slices.Clone(kvs)
	slices.Reverse(out)
	return out
}

// Whatever the records, the peer list passes the data plane's check, and
// every host keeps the same records whatever the listing order.
func FuzzPeers(f *testing.F) {
	f.Add([]byte{1, 0, 1, 0, 0, 2, 1, 2, 0, 1})
	f.Add([]byte{5, 1, 1, 1, 1, 5, 2, 2, 1, 1, 5, 0, 0, 2, 1})
	f.Add([]byte{3, 1, 1, 0, 2, 3, 2, 0, 3, 2, 1, 2, 2, 3, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Five bytes a record: index, host (its VTEP goes with it, but 3
		// has h1's VTEP under another ID), MAC, and two addresses.
		var kvs []store.KV
		for i := 0; i+5 <= len(data) && len(kvs) < 16; i += 5 {
			b := data[i : i+5]
			host, vtep := fmt.Sprintf("h%d", b[1]%4+1), fmt.Sprintf("198.18.0.%d", 11+b[1]%4)
			if b[1]%4 == 3 {
				vtep = "198.18.0.11"
			}
			mac := fmt.Sprintf("02:00:00:00:00:%02x", b[2]%4)
			id := fmt.Sprintf("%064x", i)
			kvs = append(kvs, rec(uint64(b[0]%8), id, host, vtep, mac,
				fmt.Sprintf("198.19.1.%d/24", b[3]%4+2), fmt.Sprintf("fd00::%d/64", b[4]%4+2)))
		}
		for _, h := range peerHosts {
			d, _ := peerDriver(h[0], h[1])
			got := d.peers(kvs, map[string]bool{})
			if err := dataplane.ValidatePeers(1, got); err != nil {
				t.Fatalf("%s: %v", h[0], err)
			}
			if g, r := peerStrings(got), peerStrings(d.peers(reversed(kvs), map[string]bool{})); !slices.Equal(g, r) {
				t.Fatalf("%s: peers depend on the listing order: %v and %v", h[0], g, r)
			}
		}
	})
}

// In global scope (swarm) the manager's newest assignment of an address
// takes over from an older record of it, such as a silent host's; in
// local scope the older record stays. A gone host's record is left out
// first, so the live one is programmed either way.
func TestPeersNewestWinsInGlobalScope(t *testing.T) {
	kvs := []store.KV{
		rec(10, "aaaaaaaaaaaa", "h2", "198.18.0.12", "02:42:c6:13:01:05", "198.19.1.5/24"), // silent host's task
		rec(20, "bbbbbbbbbbbb", "h3", "198.18.0.13", "02:42:c6:13:01:99", "198.19.1.5/24"), // the address given again
	}
	for _, c := range []struct {
		scope scope.Scope
		gone  map[string]bool
		want  string
	}{
		{"global", nil, "198.19.1.5=02:42:c6:13:01:99@198.18.0.13"},
		{"local", nil, "198.19.1.5=02:42:c6:13:01:05@198.18.0.12"},
		{"local", map[string]bool{"h2": true}, "198.19.1.5=02:42:c6:13:01:99@198.18.0.13"},
	} {
		d, _ := peerDriver("h1", "198.18.0.11")
		d.o.Scope, d.gone = c.scope, c.gone
		got := peerStrings(d.peers(d.withoutGone(kvs, nil), map[string]bool{}))
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("scope %s, gone %v: peers %v, want [%s]", c.scope, c.gone, got, c.want)
		}
	}
}

// Package names makes container names and network aliases resolve across
// the hosts of a vxnet network.
//
// Docker's embedded DNS (127.0.0.11) knows only its own daemon's containers
// on local-scope networks, and the remote-driver API carries no container
// names. So each host
//
//   - learns the names of its own containers from the local Docker API
//     (Syncer: names and aliases of every local endpoint on a vxnet network)
//     and writes them into that endpoint's store record; the records reach
//     every host through the driver's endpoint watch;
//   - serves them on a fixed address of its own (Server, 169.254.53.53 on
//     the link vxnet-dns by default), which dockerd lists first among
//     its upstream servers (`--dns`). Docker's resolver forwards names it
//     does not know from the container's namespace, so the query's source
//     is the container's docker_gwbridge address: Clients maps it to the
//     vxnet networks of that container.
//
// Invariants: a name is answered only from the networks the querying
// container is on (Table.Lookup); anything else such a container asks
// (unknown name, other query types) gets REFUSED, on which Docker's
// resolver (20.10 and 26.1, libnetwork resolver.go) goes on to the next
// server at once. Other clients (default-bridge containers, whose
// resolv.conf lists vxnet's address first) get their query relayed to the
// host's own name servers (Forwarder): glibc and musl would move on after
// REFUSED too, but busybox nslookup and dig ask the first server only.
// Either way unknown names resolve exactly as before. Endpoints of gone hosts never reach the
// Table (the driver leaves them out), and of several live claimants of one
// name on one network the newest record wins. No Docker API call is made
// per query: an unknown client asks for a refresh at a bounded rate.
package names

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Record is one endpoint as the resolver sees it: its names on its network
// and its addresses there.
type Record struct {
	Endpoint string
	Host     string
	Names    []string
	Addrs    []netip.Addr
	Created  time.Time // when its host wrote the record: the newest claimant wins
}

// Table holds the named endpoints of every vxnet network this host uses,
// by cluster network key. It is safe for concurrent use.
type Table struct {
	mu   sync.RWMutex
	nets map[string]map[string][]Record // network → lower-case name → claimants
}

// NewTable returns an empty Table.
func NewTable() *Table { return &Table{nets: map[string]map[string][]Record{}} }

// Set replaces the records of network key; nil or empty drops the network.
func (t *Table) Set(key string, recs []Record) {
	byName := map[string][]Record{}
	for _, r := range recs {
		for _, n := range r.Names {
			n = canonical(n)
			if n != "" && !slices.ContainsFunc(byName[n], func(o Record) bool { return o.Endpoint == r.Endpoint }) {
				byName[n] = append(byName[n], r)
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(byName) == 0 {
		delete(t.nets, key)
		return
	}
	t.nets[key] = byName
}

// Lookup returns the addresses name has on the given networks: on each, the
// addresses of its newest claimant (ties: the higher host ID, then endpoint
// ID, so every host answers alike). found is false when no network knows
// the name.
func (t *Table) Lookup(name string, networks []string) (addrs []netip.Addr, found bool) {
	name = canonical(name)
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, key := range networks {
		claimants := t.nets[key][name]
		if len(claimants) == 0 {
			continue
		}
		found = true
		for _, a := range newest(claimants).Addrs {
			if !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, found
}

func newest(rs []Record) Record {
	return slices.MaxFunc(rs, func(a, b Record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.Endpoint, b.Endpoint)
	})
}

// canonical is a DNS name as the Table keys it: lower case, no final dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

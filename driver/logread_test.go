package driver

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// The log rounds read the logs that moved by whichever server the host
// asks (store.StaleGetter: on Consul ?stale, not forwarded to the
// leader), never consistently: after the members listed the network,
// every read of a change log while endpoints are added is a GetManyStale
// (change 31; a GetManyLeader since change 20, consistent before).
func TestLogRoundsReadAnyServer(t *testing.T) {
	s, r := countedStore(t, keys.AllChanges, false)
	e1, e2, _ := twoMembers(t, s, r)
	r.TakeRequests()
	r.TakeStaleReads()
	r.TakeLeaderReads()
	const adds = 6
	want := addEndpoints(t, e1, 300, adds)
	waitPeers(t, e2, DefaultVNIOffset, want)
	reads, stale, leader := r.TakeRequests(), r.TakeStaleReads(), r.TakeLeaderReads()
	t.Logf("h2 read the change log in %d requests, %d of them by any server, %d by the leader", reads, stale, leader)
	if stale == 0 || reads != stale || leader != 0 {
		t.Errorf("h2 read the change log in %d requests while %d endpoints were added, %d by any server and %d by the leader; want all by any server, at least one", reads, adds, stale, leader)
	}
	dropTwoMembers(e1, e2, 300, adds)
}

// A server that answers the logs' read from behind (a follower that has
// not applied the writes the leader's check found) does not make the
// host miss them: the logs it answers unmoved are read again from the
// leader (readMovedLogs). Without that the round took them as unmoved and
// the watch blocked past the writes: none of the adds reached h2 before
// its periodic full listing, a minute later.
func TestLogRoundsBehindServerReadsLeader(t *testing.T) {
	s, _ := countedStore(t, keys.AllChanges, false)
	l := &laggingServer{Store: s}
	e1, e2, _ := twoMembers(t, s, l)
	if err := l.freeze(); err != nil {
		t.Fatal(err)
	}
	const adds = 4
	waitPeers(t, e2, DefaultVNIOffset, addEndpoints(t, e1, 400, adds))
	if l.leaderReads() == 0 {
		t.Error("h2 followed the adds without asking the leader; want the logs the lagging server answered unmoved read from the leader")
	}
	dropTwoMembers(e1, e2, 400, adds)
}

// addEndpoints has e1 add n endpoints to net1, numbered from first, and
// returns the peers the other member must program: twoMembers' endpoint
// and these.
func addEndpoints(t *testing.T, e1 *env, first, n int) string {
	t.Helper()
	want := "198.19.1.2@198.18.0.11"
	for i := range n {
		if err := e1.createEndpoint(net1, fmt.Sprintf("%064x", first+i), fmt.Sprintf("198.19.1.%d/24", 10+i), ""); err != nil {
			t.Fatal(err)
		}
		want += fmt.Sprintf(",198.19.1.%d@198.18.0.11", 10+i)
	}
	return want
}

// laggingServer is a store whose reads by any server (store.StaleGetter)
// come, once frozen, from a follower that stopped applying writes: the
// change logs as they were at freeze; the leader's reads (GetManyLeader)
// are the store's.
type laggingServer struct {
	store.Store
	mu     sync.Mutex
	frozen map[string]store.KV // nil: not behind
	leader int
}

// freeze has the server stop applying: its logs stay as they are now.
func (l *laggingServer) freeze() error {
	kvs, _, err := l.Store.List(context.Background(), keys.AllChanges)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frozen = map[string]store.KV{}
	for _, kv := range kvs {
		l.frozen[kv.Key] = kv
	}
	return nil
}

func (l *laggingServer) GetManyStale(ctx context.Context, ks []string) (map[string]store.KV, error) {
	l.mu.Lock()
	frozen := l.frozen
	l.mu.Unlock()
	if frozen == nil {
		return store.GetMany(ctx, l.Store, ks)
	}
	out := map[string]store.KV{}
	for _, k := range ks {
		if kv, ok := frozen[k]; ok {
			out[k] = kv
		}
	}
	return out, nil
}

func (l *laggingServer) GetManyLeader(ctx context.Context, ks []string) (map[string]store.KV, error) {
	l.mu.Lock()
	l.leader++
	l.mu.Unlock()
	return store.GetMany(ctx, l.Store, ks)
}

func (l *laggingServer) leaderReads() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader
}

// dropTwoMembers removes what twoMembers and n endpoints of e1 numbered
// from first made, and checks that nothing is left.
func dropTwoMembers(e1, e2 *env, first, n int) {
	for i := range n {
		e1.deleteEndpoint(net1, fmt.Sprintf("%064x", first+i))
	}
	e1.deleteEndpoint(net1, ep1)
	e1.deleteNetwork(net1)
	e2.deleteNetwork(net1)
	e1.wantNoKeys()
}

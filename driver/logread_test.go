package driver

import (
	"fmt"
	"testing"

	"github.com/vxnet/vxnet/store/keys"
)

// The log rounds read the logs that moved in the store's default mode
// (store.LeaderGetter: no quorum round on Consul), never consistently:
// after the members listed the network, every read of a change log while
// endpoints are added is a GetManyLeader (change 20).
func TestLogRoundsReadInDefaultMode(t *testing.T) {
	s, r := countedStore(t, keys.AllChanges, false)
	e1, e2, _ := twoMembers(t, s, r)
	r.TakeRequests()
	r.TakeLeaderReads()
	const adds = 6
	want := "198.19.1.2@198.18.0.11"
	for i := range adds {
		if err := e1.createEndpoint(net1, fmt.Sprintf("%064x", 300+i), fmt.Sprintf("198.19.1.%d/24", 10+i), ""); err != nil {
			t.Fatal(err)
		}
		want += fmt.Sprintf(",198.19.1.%d@198.18.0.11", 10+i)
	}
	waitPeers(t, e2, DefaultVNIOffset, want)
	reads, leader := r.TakeRequests(), r.TakeLeaderReads()
	t.Logf("h2 read the change log in %d requests, %d of them in default mode", reads, leader)
	if leader == 0 || reads != leader {
		t.Errorf("h2 read the change log in %d requests while %d endpoints were added, %d in default mode; want all, at least one", reads, adds, leader)
	}
	dropTwoMembers(e1, e2, 300, adds)
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

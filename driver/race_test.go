package driver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// raceCreate runs CreateNetwork on h1 (net1) and h2 (net2) at once, with
// the subnets and VNIs given, and returns both errors.
func raceCreate(h1, h2 *env, sub1, sub2 string, vni1, vni2 int) [2]error {
	reqs := [2]*network.CreateNetworkRequest{
		createReq(net1, sub1, "", vniOpt(vni1)),
		createReq(net2, sub2, "", vniOpt(vni2)),
	}
	var errs [2]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, e := range []*env{h1, h2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = e.d.CreateNetwork(context.Background(), reqs[i])
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func vniOpt(vni int) map[string]interface{} {
	if vni == 0 {
		return nil
	}
	return map[string]interface{}{OptVNI: fmt.Sprint(vni)}
}

// exactlyOne checks that one create won and the other failed with want,
// removes the winner, and checks that the store is empty.
func exactlyOne(t *testing.T, h1, h2 *env, errs [2]error, want string) {
	t.Helper()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("want exactly one create to succeed, got %v and %v", errs[0], errs[1])
	}
	if errs[0] == nil {
		wantErr(t, errs[1], want)
		h1.deleteNetwork(net1)
	} else {
		wantErr(t, errs[0], want)
		h2.deleteNetwork(net2)
	}
	h1.wantNoKeys()
}

// Creates racing on two hosts are decided by one CAS: the same network
// (subnet and VNI) joins one record on both; two networks asking one VNI,
// or overlapping subnets, give exactly one network and one clear error.
// Each case runs many rounds, on bbolt and on a real Consul.
func TestCreateRaces(t *testing.T) {
	for _, backend := range []struct {
		name   string
		stores func(t *testing.T) [2]store.Store
		rounds int
	}{
		{"bolt", func(t *testing.T) [2]store.Store {
			s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return [2]store.Store{s, s}
		}, 40},
		{"consul", func(t *testing.T) [2]store.Store {
			s := consulStores(t, 2)
			return [2]store.Store{s[0], s[1]}
		}, 20},
	} {
		t.Run(backend.name, func(t *testing.T) {
			s := backend.stores(t)
			h1 := newHost(t, s[0], "h1", "198.18.0.11")
			h2 := newHost(t, s[1], "h2", "198.18.0.12")
			for round := range backend.rounds {
				errs := raceCreate(h1, h2, "198.19.1.0/24", "198.19.1.0/24", 500, 500)
				if err := errors.Join(errs[:]...); err != nil {
					t.Fatalf("round %d, same network and VNI on two hosts: %v", round, err)
				}
				n1, err1 := h1.d.lookup(context.Background(), net1)
				n2, err2 := h2.d.lookup(context.Background(), net2)
				if err1 != nil || err2 != nil || n1.VNI != 500 || len(n2.Hosts) != 2 {
					t.Fatalf("round %d: %+v (%v), %+v (%v); want one record of VNI 500 listing both hosts", round, n1, err1, n2, err2)
				}
				h1.deleteNetwork(net1)
				h2.deleteNetwork(net2)

				errs = raceCreate(h1, h2, "198.19.1.0/24", "198.19.2.0/24", 501, 501)
				exactlyOne(t, h1, h2, errs, "VNI 501 is already used by vxnet network 198.19.")

				errs = raceCreate(h1, h2, "198.19.1.0/24", "198.19.1.0/25", 0, 0)
				exactlyOne(t, h1, h2, errs, "overlaps subnet")
			}
		})
	}
}

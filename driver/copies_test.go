package driver

import (
	"context"
	"slices"
	"testing"

	"github.com/vxnet/vxnet/store/keys"
)

// A steady reconcile round reads no copy of this host's endpoints with its
// value (it listed all of them, 0.5 KB each, every round: issue #13); a
// round after a Join reads the new copy alone. A copy deleted behind the
// driver's back is no longer counted as there. Copies not read before
// are read together, in one request (store.GetMany).
func TestReconcileReadsEachEndpointCopyOnce(t *testing.T) {
	s, r := countedStore(t, keys.HostEndpoints("h1"), false)
	e := newHost(t, r, "h1", "198.18.0.11")
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatal(err)
	}
	joinEndpoints(t, e, 3)
	round := func(what string, want int) {
		t.Helper()
		quiet(r)
		r.TakeRequests()
		if err := e.d.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if n, req := r.Take(), r.TakeRequests(); n != want || req != min(want, 1) {
			t.Fatalf("%s: reconcile read %d endpoint copies in %d requests; want %d in %d", what, n, req, want, min(want, 1))
		}
	}
	round("first round", 3)
	round("steady round", 0)
	joinEndpoint(t, e, 4)
	round("round after a Join", 1)
	round("steady round after a Join", 0)

	gone := endpointID(2)
	if err := s.Delete(ctx, keys.HostEndpoint("h1", gone)); err != nil {
		t.Fatal(err)
	}
	mine, err := e.d.ownEndpoints(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(mine))
	for i, ep := range mine {
		ids[i] = ep.ID
	}
	if len(ids) != 3 || slices.Contains(ids, gone) {
		t.Fatalf("this host's endpoints after the copy of %s was deleted: %v; want the 3 others", gone, ids)
	}
}

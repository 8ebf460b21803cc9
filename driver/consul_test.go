package driver

import (
	"context"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul"
	"github.com/vxnet/vxnet/store/consul/consultest"
)

// consulStores returns n clients of one Consul on a fresh key prefix:
// $VXNET_TEST_CONSUL if set, else a dev agent of the binary hack/consul.sh
// caches (make deps runs it), killed when the test ends (consultest.Addr:
// without one skipped, a failure in CI).
func consulStores(t *testing.T, n int) []store.Store {
	t.Helper()
	addr := consultest.Addr(t)
	prefix := "vxnet-driver-test-" + store.Nonce()
	var out []store.Store
	for range n {
		s, err := consul.Open(context.Background(), "consul://"+addr+"/"+prefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

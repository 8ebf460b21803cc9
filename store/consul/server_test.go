package consul_test

import (
	"testing"

	"github.com/vxnet/vxnet/store/consul/consultest"
)

// The Consul server of these tests comes from package consultest, which
// the tests of other packages on the Consul store share.

func consulAddr(t *testing.T) string { return consultest.Addr(t) }

func consulBinary(t *testing.T) string { return consultest.Binary(t) }

func startConsul(t *testing.T, bin string, extra ...string) string {
	return consultest.Start(t, bin, extra...)
}

func freePorts(t *testing.T, n int) []string { return consultest.FreePorts(t, n) }

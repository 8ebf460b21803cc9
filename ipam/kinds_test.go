package ipam

import (
	"context"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/errkind"
)

// The IPAM's refusals carry the kind the server answers Docker by: a wrong
// request is BadRequest, one another network or host holds is Conflict,
// an unknown pool is NotFound.
func TestErrorKinds(t *testing.T) {
	s, _ := openStore(t)
	m := New(Options{Store: s, HostID: "h1"})
	ctx := context.Background()
	id := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.8.0/24"})
	if _, err := request(m, id, "198.19.8.5", nil); err != nil {
		t.Fatal(err)
	}
	pool := func(r ipamapi.RequestPoolRequest) error { _, err := m.RequestPool(ctx, &r); return err }
	addr := func(pool, a string) error { _, err := request(m, pool, a, nil); return err }
	for _, c := range []struct {
		name string
		err  error
		want errkind.Kind
	}{
		{"no subnet", pool(ipamapi.RequestPoolRequest{}), errkind.BadRequest},
		{"host bits set", pool(ipamapi.RequestPoolRequest{Pool: "198.19.1.1/24"}), errkind.BadRequest},
		{"unknown option", pool(ipamapi.RequestPoolRequest{Pool: "198.19.1.0/24", Options: map[string]string{"foo": "bar"}}), errkind.BadRequest},
		{"overlap", pool(ipamapi.RequestPoolRequest{Pool: "198.19.8.0/25"}), errkind.Conflict},
		{"same subnet twice", pool(ipamapi.RequestPoolRequest{Pool: "198.19.8.0/24"}), errkind.Conflict},
		{"address outside", addr(id, "198.19.9.5"), errkind.BadRequest},
		{"address taken", addr(id, "198.19.8.5"), errkind.Conflict},
		{"unknown pool", addr("198.19.9.0_24", ""), errkind.NotFound},
		{"malformed pool ID", addr("nope", ""), errkind.NotFound},
	} {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		} else if got := errkind.Of(c.err); got != c.want {
			t.Errorf("%s: error %q is of kind %s, want %s", c.name, c.err, got, c.want)
		}
	}
}

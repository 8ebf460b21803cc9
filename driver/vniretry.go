package driver

import (
	"context"
	"errors"
	"fmt"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// maxVNIMoves bounds how many automatically chosen VNIs one CreateNetwork
// skips because the kernel refused them.
const maxVNIMoves = 8

// ensureNetwork builds n's kernel objects. When the kernel refuses n's VNI
// (another VXLAN device on this host holds it on the same port, e.g.
// Docker's swarm ingress) and the VNI was chosen automatically and this
// host is the network's only member, n moves to the next free VNI; the
// refused ones stay reserved until then, so the search passes them, and are
// released at the end. Otherwise the error names the cause. n.VNI is the
// VNI in use when it returns.
func (d *Driver) ensureNetwork(ctx context.Context, n *Network, dockerID string) (err error) {
	var refused []uint32
	defer func() {
		for _, vni := range refused {
			if derr := d.o.Store.Delete(context.WithoutCancel(ctx), keys.VNI(vni)); derr != nil {
				err = errors.Join(err, fmt.Errorf("release refused VNI %d: %w", vni, derr))
			}
		}
	}()
	for range maxVNIMoves {
		err := d.o.Plane.EnsureNetwork(d.netConfig(n))
		if !errors.Is(err, dataplane.ErrVNIInUse) || n.Options.VNI != 0 || !d.soleMember(n, dockerID) {
			return err
		}
		d.logNet(n).WithError(err).Warn("kernel refused the VNI; taking the next free one")
		old := n.VNI
		if err := d.moveVNI(ctx, n, dockerID); err != nil {
			return err
		}
		refused = append(refused, old)
	}
	return fmt.Errorf("vxnet network %s: the kernel refused %d VNIs in a row", n.Key, maxVNIMoves)
}

func (d *Driver) soleMember(n *Network, dockerID string) bool {
	return len(n.Hosts) == 1 && n.Hosts[d.o.HostID] == dockerID
}

// moveVNI reserves the lowest free VNI and gives it to n, provided the
// stored network still has n's VNI and no other member; else the new
// reservation is released and an error returned.
func (d *Driver) moveVNI(ctx context.Context, n *Network, dockerID string) error {
	vni, err := d.reserveVNI(ctx, 0, n.Key)
	if err != nil {
		return err
	}
	old := n.VNI
	next, err := store.Update(ctx, d.o.Store, keys.Network(n.Key), func(cur *Network) (*Network, error) {
		if cur == nil || cur.VNI != old || !d.soleMember(cur, dockerID) {
			return nil, fmt.Errorf("vxnet network %s changed while moving it from VNI %d", n.Key, old)
		}
		moved := *cur
		moved.VNI = vni
		return &moved, nil
	})
	if err != nil {
		if derr := d.o.Store.Delete(context.WithoutCancel(ctx), keys.VNI(vni)); derr != nil {
			err = errors.Join(err, fmt.Errorf("release VNI %d: %w", vni, derr))
		}
		return err
	}
	*n = *next
	return nil
}

package driver

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/store/keys"
)

// refused is what the data plane returns when another VXLAN device holds
// the VNI and port.
func refused(vni uint32) error {
	return fmt.Errorf("create vxlan: VNI %d on UDP port 4789 is held by another VXLAN device on this host, e.g. Docker's swarm ingress (%w)", vni, dataplane.ErrVNIInUse)
}

// TestVNIRefusedByKernel: the first host of a network whose automatic VNI
// the kernel refuses moves to the next free one and releases the refused
// reservation; an explicit VNI, or a host joining an existing network,
// gets the kernel's cause and leaves nothing behind.
func TestVNIRefusedByKernel(t *testing.T) {
	e1 := newEnv(t)
	e2 := newHost(t, e1.store, "h2", "198.18.0.12")
	ctx := context.Background()

	e1.plane.failNext = refused(DefaultVNIOffset)
	if err := e1.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "", nil)); err != nil {
		t.Fatalf("automatic VNI refused once: %v", err)
	}
	nets, _ := e1.plane.Networks()
	if !slices.Equal(nets, []uint32{DefaultVNIOffset + 1}) {
		t.Fatalf("kernel networks %v, want VNI %d", nets, DefaultVNIOffset+1)
	}
	want := keys.VNI(DefaultVNIOffset + 1)
	for _, k := range e1.keys() {
		if k == keys.VNI(DefaultVNIOffset) {
			t.Errorf("refused VNI still reserved: %v", e1.keys())
		}
	}
	if !slices.Contains(e1.keys(), want) {
		t.Errorf("store keys %v lack %s", e1.keys(), want)
	}

	// A second host joins: the VNI is the cluster's, so no move.
	e2.plane.failNext = refused(DefaultVNIOffset + 1)
	err := e2.d.CreateNetwork(ctx, createReq(net2, "198.19.1.0/24", "", nil))
	wantErr(t, err, "held by another VXLAN device")
	if nets, _ := e2.plane.Networks(); len(nets) != 0 {
		t.Errorf("joining host kept kernel networks %v", nets)
	}

	// An explicit VNI the kernel refuses is an error naming the cause.
	before := e1.keys()
	e2.plane.failNext = refused(7000)
	err = e2.d.CreateNetwork(ctx, createReq(net2, "198.19.2.0/24", "", map[string]interface{}{OptVNI: "7000"}))
	wantErr(t, err, "VNI 7000 on UDP port 4789 is held by another VXLAN device")
	if k := e1.keys(); !slices.Equal(k, before) {
		t.Errorf("store keys after the refused explicit VNI %v, were %v", k, before)
	}

	if err := e1.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: net1}); err != nil {
		t.Fatal(err)
	}
	if k := e1.keys(); len(k) != 0 {
		t.Fatalf("store keys left: %v", k)
	}
}

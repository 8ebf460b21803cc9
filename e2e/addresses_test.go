package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/store/keys"
)

// CheckAddresses is the cluster-wide duplicate-address check, for use
// after any scenario (Check runs it too): see checkAddresses.
func (lc *leakChecker) CheckAddresses() error {
	v, err := lc.docker()
	if err != nil {
		return err
	}
	kv, err := harness.ConsulKV(lc.consul, lc.prefix+"/")
	if err != nil {
		return err
	}
	have := map[string][]byte{}
	for k, val := range kv {
		have[strings.TrimPrefix(k, lc.prefix+"/")] = val
	}
	return checkAddresses(v, have)
}

// checkAddresses checks that no address is on two endpoints, on any
// hosts, and that every endpoint's address is leased to the host whose
// Docker has the endpoint (a missing lease is reported as lost by
// checkStore).
func checkAddresses(v *dockerView, have map[string][]byte) error {
	var errs []error
	seen := map[netip.Addr]endpointView{}
	for _, ep := range v.eps {
		for _, a := range ep.addrs {
			if other, dup := seen[a.Addr()]; dup {
				errs = append(errs, fmt.Errorf("duplicate address %s: container %s on %s and container %s on %s",
					a.Addr(), other.name, other.host.h.Name, ep.name, ep.host.h.Name))
			}
			seen[a.Addr()] = ep
			b, ok := have[keys.Lease(keys.PoolID(a), a.Addr())]
			if !ok {
				continue
			}
			var lease struct{ Host string }
			if err := json.Unmarshal(b, &lease); err != nil || lease.Host != ep.host.hostID() {
				errs = append(errs, fmt.Errorf("address %s of container %s on %s is leased to host %q (%v), not to %q",
					a.Addr(), ep.name, ep.host.h.Name, lease.Host, err, ep.host.hostID()))
			}
		}
	}
	return errors.Join(errs...)
}

// checkSubnetIndex compares the IPAM's subnet index (ipam/subnets: pool →
// hosts claiming its subnet) with the pools Docker's networks use: a claim
// left behind would refuse every overlapping subnet for good.
func checkSubnetIndex(wantPool map[string]map[string]bool, have map[string][]byte) error {
	b, ok := have[keys.PoolIndex]
	if !ok {
		return nil // reported as lost, if pools exist
	}
	var idx struct{ Pools map[string]map[string]bool }
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("store: %s: %w", keys.PoolIndex, err)
	}
	if fmt.Sprint(idx.Pools) != fmt.Sprint(wantPool) {
		return fmt.Errorf("store: %s claims %v, Docker has networks on %v", keys.PoolIndex, idx.Pools, wantPool)
	}
	return nil
}

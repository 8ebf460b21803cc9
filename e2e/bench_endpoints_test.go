//go:build bench

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/store/keys"
)

// Scale's endpoints are mostly made by calling the plugin as dockerd calls
// it for a `docker run` (IpamDriver.RequestAddress,
// NetworkDriver.CreateEndpoint, NetworkDriver.Join, the same requests), not
// by containers: on this 2-core machine a `docker run -d` costs about two
// CPU-seconds of Docker's own machinery (runc, the shim, dockerd's
// libnetwork-setkey re-exec; vxnet is 5% of it, perf), so 1900 containers
// cannot fit in `make bench`'s 30 minutes, while what Scale measures of
// vxnet — its Join as the network grows, its RSS, its store writes, the
// peers it programs — depends on the endpoints it holds, not on whose
// they are. A few real `docker run -d` per block time the whole start.
// The container side of such an endpoint stays in the host's namespace
// (down), where no sandbox takes it.

// benchEndpoint is one endpoint made through the plugin's API.
type benchEndpoint struct {
	p          *plugin
	netID, id  string
	pool, addr string // IPAM pool ID and the address leased, as a prefix
}

// pluginNet is what the plugin calls need of Docker network name on h: its
// ID and vxnet's IPAM pool ID of subnet.
type pluginNet struct{ id, pool string }

func inspectNet(t *testing.T, h *harness.Host, name, subnet string) pluginNet {
	t.Helper()
	return pluginNet{id: h.MustDocker(t, "network", "inspect", "-f", "{{.Id}}", name), pool: keys.PoolID(netip.MustParsePrefix(subnet))}
}

// pluginCall posts req (marshalled) to the plugin and decodes a 200
// answer into resp (when not nil); anything else is an error naming what.
func pluginCall(p *plugin, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	code, out, err := p.call(path, string(body))
	if err != nil {
		return fmt.Errorf("%s: %s: %w", p.h.Name, path, err)
	}
	if code != 200 || strings.Contains(out, `"Err":"`) && !strings.Contains(out, `"Err":""`) {
		return fmt.Errorf("%s: %s: %d %s", p.h.Name, path, code, out)
	}
	if resp != nil {
		if err := json.Unmarshal([]byte(out), resp); err != nil {
			return fmt.Errorf("%s: %s: answer %q: %w", p.h.Name, path, out, err)
		}
	}
	return nil
}

// addEndpoint leases an address and creates and joins endpoint id on
// network n, as dockerd does for a container. What was made before a
// failure is undone.
func addEndpoint(p *plugin, n pluginNet, id string) (_ *benchEndpoint, err error) {
	var lease struct{ Address string }
	if err := pluginCall(p, "/IpamDriver.RequestAddress", map[string]any{"PoolID": n.pool, "Options": map[string]string{}}, &lease); err != nil {
		return nil, err
	}
	e := &benchEndpoint{p: p, netID: n.id, id: id, pool: n.pool, addr: lease.Address}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.remove())
		}
	}()
	if err := pluginCall(p, "/NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": n.id, "EndpointID": id,
		"Interface": map[string]string{"Address": lease.Address}, "Options": map[string]any{}}, nil); err != nil {
		return e, err
	}
	err = pluginCall(p, "/NetworkDriver.Join", map[string]any{"NetworkID": n.id, "EndpointID": id,
		"SandboxKey": "/var/run/docker/netns/vxnet-bench", "Options": map[string]any{}}, nil)
	return e, err
}

// remove leaves and deletes the endpoint and releases its address, as
// dockerd does when the container goes; each step runs even if one before
// failed (each is idempotent).
func (e *benchEndpoint) remove() error {
	ip, _, _ := strings.Cut(e.addr, "/")
	return errors.Join(
		pluginCall(e.p, "/NetworkDriver.Leave", map[string]string{"NetworkID": e.netID, "EndpointID": e.id}, nil),
		pluginCall(e.p, "/NetworkDriver.DeleteEndpoint", map[string]string{"NetworkID": e.netID, "EndpointID": e.id}, nil),
		pluginCall(e.p, "/IpamDriver.ReleaseAddress", map[string]string{"PoolID": e.pool, "Address": ip}, nil))
}

// removeEndpoints removes eps, workers at a time, and returns the errors.
func removeEndpoints(eps []*benchEndpoint, workers int) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(eps); i += workers {
				if err := eps[i].remove(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("remove endpoint %s: %w", eps[i].id[:12], err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

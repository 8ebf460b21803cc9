package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/store/bolt"
)

// plugin is one `vxnet serve` on a harness host.
type plugin struct {
	h        *harness.Host
	proc     *harness.Proc
	store    string // --store URI
	db       string // bolt file, when the store is bolt
	netnsDir string
	args     []string
}

// startPlugin runs vxnet on host h with the store at storeURI ("" for a
// bbolt file in the host's run dir) and waits until it answers on its
// socket.
func startPlugin(t *testing.T, h *harness.Host, storeURI string, extra ...string) *plugin {
	t.Helper()
	p := &plugin{h: h, store: storeURI, netnsDir: filepath.Join(h.RunDir(), "vxnet", "netns")}
	if p.store == "" {
		p.db = filepath.Join(h.RunDir(), "vxnet", "vxnet.db")
		p.store = "bolt://" + p.db
	}
	p.args = append([]string{vxnetBin, "serve", "--store", p.store, "--netns-dir", p.netnsDir,
		"--log-level", "debug", "--reconcile-interval", "2s",
		"--host-id-file", filepath.Join(h.RunDir(), "vxnet", "host-id"),
		"--docker-host", h.Socket(), "--dns-addr", "off"}, extra...) // names: on in TestNames only
	p.start(t)
	return p
}

func (p *plugin) start(t *testing.T) {
	t.Helper()
	p.proc = p.h.Start(t, "vxnet", p.args...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, err := p.call("/Plugin.Activate", "")
		if err == nil && code == 200 {
			return
		}
		if p.proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("vxnet on %s did not come up (%v):\n%s", p.h.Name, err, p.proc.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostID is the plugin's --host-id: its advertise address unless given.
func (p *plugin) hostID() string {
	for i, a := range p.args {
		if a == "--host-id" && i+1 < len(p.args) {
			return p.args[i+1]
		}
	}
	return p.h.IP
}

// socket is the plugin socket as seen from the test: it exists only in
// the host's mount namespace, which the plugin is in also while dockerd is
// down.
func (p *plugin) socket() string {
	return fmt.Sprintf("/proc/%d/root/run/docker/plugins/vxnet.sock", p.proc.Pid())
}

// call posts body to a plugin endpoint, as dockerd does.
func (p *plugin) call(path, body string) (int, string, error) {
	return postUnix(p.socket(), path, "application/vnd.docker.plugins.v1.1+json", body)
}

// postUnix posts body to path of the HTTP server on a unix socket and
// returns the status and the trimmed answer.
func postUnix(socket, path, contentType, body string) (int, string, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://unix"+path, contentType, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// storeKeys stops the plugin (bbolt allows one process, and a running
// plugin may still write) and lists what is left in its store: the bbolt
// file, or the keys under the Consul prefix through Consul's HTTP API.
func (p *plugin) storeKeys(t *testing.T) []string {
	t.Helper()
	if err := p.proc.Stop(); err != nil {
		t.Fatalf("stop vxnet: %v", err)
	}
	if p.db == "" {
		u, err := url.Parse(p.store)
		if err != nil || u.Scheme != "consul" {
			t.Fatalf("store %q: neither bolt nor consul (%v)", p.store, err)
		}
		keys, err := harness.ConsulKeys(u.Host, strings.Trim(u.Path, "/")+"/")
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	s, err := bolt.Open(p.db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kvs, _, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	return keys
}

// kernelLeaks names vxnet's kernel objects left on the host: namespace
// files and veth/vxlan links in the host namespace.
func (p *plugin) kernelLeaks() error {
	var leaks []string
	entries, err := os.ReadDir(p.netnsDir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range entries {
		leaks = append(leaks, "netns "+e.Name())
	}
	return hostLeaks(p.h, "vxnet", leaks)
}

// hostLeaks adds to leaks vxnet's links left in h's namespace (veth ends,
// vxlan devices made before their move), its VXLAN filter (nftables table
// inet vxnet, which goes with the last network) and the Docker networks of
// driver, and names them all.
func hostLeaks(h *harness.Host, driver string, leaks []string) error {
	links, err := h.Links()
	if err != nil {
		return err
	}
	for _, l := range links {
		if strings.HasPrefix(l, "vxc") || strings.HasPrefix(l, "vxp") || strings.HasPrefix(l, "vxt") || strings.HasPrefix(l, "vxe-") {
			leaks = append(leaks, "link "+l)
		}
	}
	if out, err := h.Exec("nft", "list", "table", "inet", "vxnet"); err == nil {
		leaks = append(leaks, "nft table inet vxnet: "+strings.Join(strings.Fields(out), " "))
	}
	leaks = append(leaks, egressLeaks(h)...)
	out, err := h.Docker("network", "ls", "-q", "--filter", "driver="+driver)
	if err != nil {
		return err
	}
	if out != "" {
		leaks = append(leaks, "docker networks "+strings.ReplaceAll(out, "\n", " "))
	}
	if len(leaks) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(leaks, ", "))
	}
	return nil
}

// ip returns a container's address on a network.
func ip(t *testing.T, h *harness.Host, container, network string) string {
	t.Helper()
	return h.MustDocker(t, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", network), container)
}

// createNet creates a vxnet network and removes it when the test ends.
func createNet(t *testing.T, h *harness.Host, name, subnet string, extra ...string) {
	t.Helper()
	createDriverNet(t, h, "vxnet", name, subnet, extra...)
}

// createDriverNet is createNet on the network and IPAM driver named
// driver: "vxnet" for the socket plugin, managedName for the managed one.
func createDriverNet(t *testing.T, h *harness.Host, driver, name, subnet string, extra ...string) {
	t.Helper()
	args := append([]string{"network", "create", "-d", driver, "--ipam-driver", driver, "--subnet", subnet}, extra...)
	h.MustDocker(t, append(args, name)...)
	t.Cleanup(func() {
		if err := removeNetwork(h, name); err != nil {
			t.Error(err)
		}
	})
}

// removeNetwork removes a Docker network, waiting out dockerd's own race:
// `docker rm -f` returns before the container's endpoints are released,
// and until then the network "has active endpoints". A network that is
// already gone is not an error.
func removeNetwork(h *harness.Host, name string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := h.Docker("network", "rm", name)
		if err == nil || strings.Contains(out, "not found") || strings.Contains(out, "No such network") {
			return nil
		}
		if !strings.Contains(out, "has active endpoints") || time.Now().After(deadline) {
			return fmt.Errorf("%s: remove network %s: %v", h.Name, name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runC starts a detached container and removes it when the test ends.
func runC(t *testing.T, h *harness.Host, name string, args ...string) {
	t.Helper()
	a := append([]string{"run", "-d", "--name", name}, args...)
	h.MustDocker(t, a...)
	t.Cleanup(func() { _, _ = h.Docker("rm", "-f", name) })
}

var sleeper = []string{harness.Image, "sleep", "1d"}

// egressLeaks names what is left in h of networks' own egress
// (-o vxnet.egress=own): iptables rules or chains of vxnet's, routes in
// the egress link range.
func egressLeaks(h *harness.Host) []string {
	var leaks []string
	for _, table := range []string{"filter", "nat"} {
		out, err := h.Exec("iptables-save", "-t", table)
		if err != nil {
			leaks = append(leaks, fmt.Sprintf("iptables-save -t %s: %v", table, err))
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "VXNET-EGRESS") || strings.Contains(line, "vxe-") {
				leaks = append(leaks, "iptables "+table+": "+line)
			}
		}
	}
	if out, err := h.Exec("ip", "-4", "route", "show", "root", "169.254.64.0/18"); err == nil && strings.TrimSpace(out) != "" {
		leaks = append(leaks, "routes "+strings.Join(strings.Fields(out), " "))
	}
	return leaks
}

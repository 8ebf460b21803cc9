package e2e

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/store/keys"
)

// leakChecker compares everything vxnet keeps with what Docker has, on
// every host: Docker is the truth, and after any sequence of callbacks,
// crashes and outages vxnet must converge to it. Checked:
//   - kernel, per host: the plugin's namespace files are exactly those of
//     the host's vxnet networks; no vx* link in the host namespace; inside
//     each namespace only lo, br0, vxlan0 and one vxp<id> port per local
//     endpoint; br0 holds exactly the gateways; vxlan0's static FDB,
//     bridge (master) FDB and permanent neighbour entries are exactly the
//     endpoints of the same network on the other hosts, and its flood
//     (all-zeros MAC) entries and the VXLAN filter's set (nftables table
//     inet vxnet) exactly those hosts' VTEPs; a host with no vxnet network
//     has no such table;
//   - store (Consul; a bbolt store is only readable once its plugin has
//     stopped, see plugin.storeKeys): exactly the keys these networks and
//     endpoints need: network, VNI and per-host references, endpoint
//     records and the hosts' copies, one MAC key per endpoint
//     (macs/<key>/<mac>), IPAM pools, their subnet index and one lease per
//     endpoint address and --aux-address, heartbeats of running plugins,
//     the swarm census's record of each swarm service (swarm/services/).
//     Missing keys are reported as lost, extra ones as leaked; the
//     driver's subnet claims (subnets) exist only while a create runs, so
//     any is a leak.
type leakChecker struct {
	plugins []*plugin // Hosts[i]'s plugin is plugins[i]
	driver  string    // Docker's name of the driver: "vxnet" when empty, or managedName
	consul  string    // Consul HTTP address; "" when the store is bbolt
	prefix  string    // Consul key prefix
}

// dockerNet is what `docker network inspect` tells of a vxnet network.
type dockerNet struct {
	ID   string `json:"Id"`
	Name string
	IPAM struct {
		Config []struct {
			Subnet, Gateway    string
			AuxiliaryAddresses map[string]string // --aux-address: leased for the pool
		}
	}
	Containers map[string]struct {
		Name        string
		EndpointID  string
		MacAddress  string
		IPv4Address string
		IPv6Address string
	}
}

// endpointView is one endpoint as Docker sees it.
type endpointView struct {
	host  *plugin
	net   string // cluster key: pool ID of the first subnet
	id    string
	mac   string
	addrs []netip.Prefix
	name  string
}

// dockerView is the vxnet networks and endpoints Docker has on every host.
type dockerView struct {
	nets map[*plugin][]dockerNet
	eps  []endpointView
}

func (lc *leakChecker) docker() (*dockerView, error) {
	v := &dockerView{nets: map[*plugin][]dockerNet{}}
	for _, p := range lc.plugins {
		ids, err := p.h.Docker("network", "ls", "-q", "--no-trunc", "--filter", "driver="+cmp.Or(lc.driver, "vxnet"))
		if err != nil {
			return nil, err
		}
		if ids == "" {
			continue
		}
		out, err := p.h.Docker(append([]string{"network", "inspect"}, strings.Fields(ids)...)...)
		if err != nil {
			return nil, err
		}
		var nets []dockerNet
		if err := json.Unmarshal([]byte(out), &nets); err != nil {
			return nil, fmt.Errorf("%s: docker network inspect: %w", p.h.Name, err)
		}
		v.nets[p] = nets
		for _, n := range nets {
			key, err := n.key()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.h.Name, err)
			}
			for _, c := range n.Containers {
				ep := endpointView{host: p, net: key, id: c.EndpointID, mac: strings.ToLower(c.MacAddress), name: c.Name}
				for _, a := range []string{c.IPv4Address, c.IPv6Address} {
					if a == "" {
						continue
					}
					pfx, err := netip.ParsePrefix(a)
					if err != nil {
						return nil, fmt.Errorf("%s: container %s on %s has address %q", p.h.Name, c.Name, n.Name, a)
					}
					ep.addrs = append(ep.addrs, pfx)
				}
				v.eps = append(v.eps, ep)
			}
		}
	}
	return v, nil
}

func (n dockerNet) key() (string, error) {
	if len(n.IPAM.Config) == 0 {
		return "", fmt.Errorf("network %s has no subnet", n.Name)
	}
	p, err := netip.ParsePrefix(n.IPAM.Config[0].Subnet)
	if err != nil {
		return "", fmt.Errorf("network %s: subnet %q", n.Name, n.IPAM.Config[0].Subnet)
	}
	return keys.PoolID(p), nil
}

// Check compares once and returns every difference.
func (lc *leakChecker) Check() error {
	v, err := lc.docker()
	if err != nil {
		return err
	}
	var errs []error
	var vnis map[string]netRecord // cluster key → its record in the store
	if lc.consul != "" {
		vnis, err = lc.checkStore(v)
		errs = append(errs, err)
	}
	for _, p := range lc.plugins {
		errs = append(errs, lc.checkKernel(p, v, vnis))
	}
	return errors.Join(errs...)
}

// Wait checks until everything matches or timeout has passed, and returns
// how long it took and the last differences.
func (lc *leakChecker) Wait(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		err := lc.Check()
		if err == nil || time.Since(start) > timeout {
			return time.Since(start), err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// netRecord is what the checker needs of a cluster network record.
type netRecord struct {
	VNI      uint32
	Gateways []string
}

// checkStore compares the Consul prefix with what the Docker view needs
// and returns the record of every cluster network found.
func (lc *leakChecker) checkStore(v *dockerView) (map[string]netRecord, error) {
	kv, err := harness.ConsulKV(lc.consul, lc.prefix+"/")
	if err != nil {
		return nil, err
	}
	have := map[string][]byte{}
	for k, val := range kv {
		have[strings.TrimPrefix(k, lc.prefix+"/")] = val
	}
	running := map[*plugin]bool{}
	for _, p := range lc.plugins {
		running[p] = lc.running(p)
	}
	return storeDiff(v, have, running, lc.swarmServices(have))
}

// storeDiff compares the store's keys and values (have) with what the
// Docker view needs, given which plugins run and the swarm's service IDs,
// and returns the record of every cluster network found.
func storeDiff(v *dockerView, have map[string][]byte, running map[*plugin]bool, services []string) (map[string]netRecord, error) {
	want := map[string]bool{}
	may := map[string]bool{} // keys that may exist: a network's change log, once an endpoint changed
	vnis := map[string]netRecord{}
	for p, nets := range v.nets {
		for _, n := range nets {
			key, _ := n.key()
			want[keys.HostNetwork(p.hostID(), n.ID)] = true
			want[keys.Network(key)] = true
			may[keys.Changes(key)] = true
			for _, c := range n.IPAM.Config {
				s, err := netip.ParsePrefix(c.Subnet)
				if err != nil {
					continue
				}
				want[keys.Pool(keys.PoolID(s))] = true
				want[keys.PoolIndex] = true // the subnet index, while any pool exists
				for _, a := range c.AuxiliaryAddresses {
					if aux, err := netip.ParseAddr(a); err == nil {
						want[keys.Lease(keys.PoolID(s), aux)] = true
					}
				}
			}
			var rec netRecord
			if b, ok := have[keys.Network(key)]; ok && json.Unmarshal(b, &rec) == nil && rec.VNI != 0 {
				vnis[key] = rec
				want[keys.VNI(rec.VNI)] = true
			}
		}
	}
	for _, ep := range v.eps {
		want[keys.Endpoint(ep.net, ep.id)] = true
		want[keys.HostEndpoint(ep.host.hostID(), ep.id)] = true
		want[keys.MAC(ep.net, ep.mac)] = true
		for _, a := range ep.addrs {
			want[keys.Lease(keys.PoolID(a), a.Addr())] = true
		}
	}
	for p, run := range running {
		if run {
			want[keys.Heartbeat(p.hostID())] = true
		}
	}
	// A running plugin may hold a liveness monitor slot; Consul drops it
	// with its session.
	for k, b := range have {
		var rec struct{ Host string }
		if keys.Kind(k) == "liveness monitor" && json.Unmarshal(b, &rec) == nil {
			for p, run := range running {
				may[k] = may[k] || (run && p.hostID() == rec.Host)
			}
		}
	}
	for _, id := range services {
		want[keys.SwarmService(id)] = true
	}
	errs := append(checkMembers(v, have), checkAddresses(v, have))
	var lost, leaked []string
	for k := range want {
		if _, ok := have[k]; !ok && keys.Kind(k) != "heartbeat" {
			lost = append(lost, k)
		}
	}
	for k := range have {
		if !want[k] && !may[k] {
			leaked = append(leaked, cmp.Or(keys.Kind(k), "unknown")+" "+k)
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		errs = append(errs, fmt.Errorf("store lacks %d keys Docker's state needs: %s", len(lost), strings.Join(lost, ", ")))
	}
	if len(leaked) > 0 {
		sort.Strings(leaked)
		errs = append(errs, fmt.Errorf("store has %d keys no Docker network or endpoint needs: %s", len(leaked), strings.Join(leaked, ", ")))
	}
	return vnis, errors.Join(errs...)
}

// checkMembers compares the hosts that network and pool records list with
// the hosts whose Docker has a network on them: a host left in a record
// (a removal cut short) keeps the record alive and refuses the subnet on
// that host.
func checkMembers(v *dockerView, have map[string][]byte) []error {
	wantNet := map[string]map[string]string{} // key → host → docker network
	wantPool := map[string]map[string]bool{}  // pool → hosts
	for p, nets := range v.nets {
		for _, n := range nets {
			key, _ := n.key()
			if wantNet[key] == nil {
				wantNet[key] = map[string]string{}
			}
			wantNet[key][p.hostID()] = n.ID
			for _, c := range n.IPAM.Config {
				if s, err := netip.ParsePrefix(c.Subnet); err == nil {
					id := keys.PoolID(s)
					if wantPool[id] == nil {
						wantPool[id] = map[string]bool{}
					}
					wantPool[id][p.hostID()] = true
				}
			}
		}
	}
	var errs []error
	for key, hosts := range wantNet {
		var rec struct{ Hosts map[string]string }
		if b, ok := have[keys.Network(key)]; ok && json.Unmarshal(b, &rec) == nil && fmt.Sprint(rec.Hosts) != fmt.Sprint(hosts) {
			errs = append(errs, fmt.Errorf("store: network %s lists hosts %v, Docker has %v", key, rec.Hosts, hosts))
		}
	}
	for id, hosts := range wantPool {
		var rec struct {
			Hosts, Setup map[string]bool
		}
		b, ok := have[keys.Pool(id)]
		if !ok || json.Unmarshal(b, &rec) != nil {
			continue
		}
		if fmt.Sprint(rec.Hosts) != fmt.Sprint(hosts) {
			errs = append(errs, fmt.Errorf("store: pool %s lists hosts %v, Docker has networks on %v", id, rec.Hosts, hosts))
		}
		if len(rec.Setup) > 0 {
			errs = append(errs, fmt.Errorf("store: pool %s has hosts still setting up %v", id, rec.Setup))
		}
	}
	return append(errs, checkSubnetIndex(wantPool, have))
}

// running tells whether p's vxnet runs: its process, or, for the managed
// plugin (no proc), dockerd's word.
func (lc *leakChecker) running(p *plugin) bool {
	if p.proc != nil {
		return !p.proc.Exited()
	}
	out, err := p.h.Docker("plugin", "inspect", "-f", "{{.Enabled}}", lc.driver)
	return err == nil && out == "true"
}

// checkKernel compares one host's kernel objects with the Docker view.
// vnis maps cluster keys to VNIs; without it (bbolt) namespaces are only
// counted.
func (lc *leakChecker) checkKernel(p *plugin, v *dockerView, vnis map[string]netRecord) error {
	var errs []error
	files, err := os.ReadDir(p.netnsDir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	have := map[string]bool{}
	for _, f := range files {
		have[f.Name()] = true
	}
	links, err := p.h.Links()
	if err != nil {
		return err
	}
	for _, l := range links {
		// vxnet-dns holds the names resolver's address for as long as
		// the host runs vxnet (TestNames removes it at the end).
		if strings.HasPrefix(l, "vx") && l != "vxnet-dns" {
			errs = append(errs, fmt.Errorf("%s: link %s in the host namespace", p.h.Name, l))
		}
	}
	nets := v.nets[p]
	if vnis == nil {
		if len(have) != len(nets) {
			errs = append(errs, fmt.Errorf("%s: %d namespace files %v for %d vxnet networks", p.h.Name, len(have), sortedKeys(have), len(nets)))
		}
		return errors.Join(errs...)
	}
	want := map[string]bool{}
	for _, n := range nets {
		key, _ := n.key()
		rec, ok := vnis[key]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: network %s (%s) has no VNI in the store", p.h.Name, n.Name, key))
			continue
		}
		vni := fmt.Sprint(rec.VNI)
		want["vx-"+vni] = true
		if !have["vx-"+vni] {
			errs = append(errs, fmt.Errorf("%s: no namespace vx-%s for network %s", p.h.Name, vni, n.Name))
			continue
		}
		errs = append(errs, lc.checkNamespace(p, v, rec, key, "vx-"+vni))
	}
	for f := range have {
		if !want[f] {
			errs = append(errs, fmt.Errorf("%s: namespace file %s of no vxnet network", p.h.Name, f))
		}
	}
	return errors.Join(errs...)
}

// nsState is what one network namespace holds.
type nsState struct {
	Links []struct {
		Name string `json:"ifname"`
	}
	Neigh []struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	FDB []struct {
		MAC    string   `json:"mac"`
		Dst    string   `json:"dst"`
		Master string   `json:"master"`
		State  string   `json:"state"`
		Flags  []string `json:"flags"`
	}
	Addrs []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
		} `json:"addr_info"`
	}
}

const nsDump = `ip -j link show; echo @@; ip -j neigh show dev vxlan0 nud permanent; echo @@; bridge -j fdb show dev vxlan0; echo @@; ip -j addr show dev br0`

func readNamespace(p *plugin, file string) (*nsState, error) {
	out, err := p.h.Exec("nsenter", "--net="+p.netnsDir+"/"+file, "sh", "-c", nsDump)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(out, "@@")
	if len(parts) != 4 {
		return nil, fmt.Errorf("%s: namespace %s: unexpected output %q", p.h.Name, file, out)
	}
	var s nsState
	for i, dst := range []any{&s.Links, &s.Neigh, &s.FDB, &s.Addrs} {
		text := strings.TrimSpace(parts[i])
		if text == "" {
			continue
		}
		if err := json.Unmarshal([]byte(text), dst); err != nil {
			return nil, fmt.Errorf("%s: namespace %s: %w in %q", p.h.Name, file, err, text)
		}
	}
	return &s, nil
}

func (lc *leakChecker) checkNamespace(p *plugin, v *dockerView, rec netRecord, key, file string) error {
	s, err := readNamespace(p, file)
	if err != nil {
		return err
	}
	wantLinks := map[string]bool{"lo": true, "br0": true, "vxlan0": true}
	wantNeigh, wantFDB := map[string]bool{}, map[string]bool{}
	wantMaster, wantFlood := map[string]bool{}, map[string]bool{}
	for _, ep := range v.eps {
		if ep.net != key {
			continue
		}
		if ep.host == p {
			wantLinks["vxp"+ep.id[:12]] = true
			continue
		}
		wantFDB[ep.mac+" dst "+ep.host.h.IP] = true
		wantMaster[ep.mac] = true
		wantFlood[ep.host.h.IP] = true
		for _, a := range ep.addrs {
			wantNeigh[a.Addr().String()+" lladdr "+ep.mac] = true
		}
	}
	haveLinks, haveNeigh, haveFDB, haveAddrs := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, l := range s.Links {
		haveLinks[l.Name] = true
	}
	for _, e := range s.Neigh {
		haveNeigh[e.Dst+" lladdr "+strings.ToLower(e.LLAddr)] = true
	}
	haveMaster, haveFlood := map[string]bool{}, map[string]bool{}
	for _, e := range s.FDB {
		switch {
		case e.Master != "" && e.State == "static":
			haveMaster[strings.ToLower(e.MAC)] = true
		case e.Master != "" || e.Dst == "":
		case e.MAC == "00:00:00:00:00:00":
			haveFlood[e.Dst] = true
		default:
			haveFDB[strings.ToLower(e.MAC)+" dst "+e.Dst] = true
		}
	}
	for _, a := range s.Addrs {
		for _, ai := range a.AddrInfo {
			if ai.Scope == "global" {
				haveAddrs[fmt.Sprintf("%s/%d", ai.Local, ai.PrefixLen)] = true
			}
		}
	}
	wantAddrs := map[string]bool{}
	for _, gw := range rec.Gateways {
		wantAddrs[gw] = true
	}
	where := p.h.Name + " " + file + " (" + key + ")"
	haveFilter, err := filterVTEPs(p.h, strings.TrimPrefix(file, "vx-"))
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return errors.Join(
		diff(where, "VTEPs the VXLAN filter admits", wantFlood, haveFilter),
		diff(where, "links", wantLinks, haveLinks),
		diff(where, "neighbour entries on vxlan0", wantNeigh, haveNeigh),
		diff(where, "FDB entries on vxlan0", wantFDB, haveFDB),
		diff(where, "bridge FDB entries on port vxlan0", wantMaster, haveMaster),
		diff(where, "flood entries on vxlan0", wantFlood, haveFlood),
		diff(where, "addresses on br0", wantAddrs, haveAddrs),
	)
}

// filterVTEPs lists the IPv4 VTEPs the host's VXLAN filter admits for a
// VNI (the set v4-<vni> of the nftables table inet vxnet).
func filterVTEPs(h *harness.Host, vni string) (map[string]bool, error) {
	out, err := h.Exec("nft", "list", "set", "inet", "vxnet", "v4-"+vni)
	if err != nil {
		return nil, fmt.Errorf("VXLAN filter set of VNI %s: %w", vni, err)
	}
	have := map[string]bool{}
	if _, elems, ok := strings.Cut(out, "elements = {"); ok {
		elems, _, _ = strings.Cut(elems, "}")
		for _, a := range strings.Split(elems, ",") {
			if a = strings.TrimSpace(a); a != "" {
				have[a] = true
			}
		}
	}
	return have, nil
}

// diff names what is missing from have and what is extra in it.
func diff(where, what string, want, have map[string]bool) error {
	var missing, extra []string
	for k := range want {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	for k := range have {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return fmt.Errorf("%s: %s: missing [%s], extra [%s]", where, what, strings.Join(missing, ", "), strings.Join(extra, ", "))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// swarmServices lists the IDs of the swarm's services, asked of the hosts'
// managers only when the store holds census records (package swarm).
func (lc *leakChecker) swarmServices(have map[string][]byte) []string {
	asked := false
	for k := range have {
		asked = asked || keys.Kind(k) == "swarm service"
	}
	if !asked {
		return nil
	}
	var ids []string
	for _, p := range lc.plugins {
		if out, err := p.h.Docker("service", "ls", "--format", "{{.ID}}"); err == nil { // a worker refuses
			ids = append(ids, strings.Fields(out)...)
		}
	}
	return ids
}

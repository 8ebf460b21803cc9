package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
	"github.com/vxnet/vxnet/store/bolt"
)

// managedName is the managed plugin's name; dockerd (20.10 and 26.1)
// resolves a managed driver only by its full name, tag included.
const managedName = "vxnet:latest"

// managedPlugin is vxnet installed as a managed plugin on a harness host:
// dockerd runs it (containerd, namespace plugins.moby) from a plugin
// directory assembled like `make plugin` does.
type managedPlugin struct {
	h   *harness.Host
	id  string
	dir string // the plugin directory it was created from
	// hostRun stands in for the host's /run/vxnet, the one host directory
	// the plugin sees (mount "run"); its namespaces are in hostRun/netns.
	hostRun string
}

// buildPluginDir makes the `docker plugin create` directory in dir:
// config.json from plugin-config/ and a rootfs of the test's vxnet binary
// plus the mount points config.json names.
func buildPluginDir(dir string) error {
	conf, err := os.ReadFile("../plugin-config/config.json")
	if err != nil {
		return err
	}
	var c struct {
		PropagatedMount string
		Mounts          []struct{ Destination string }
	}
	if err := json.Unmarshal(conf, &c); err != nil {
		return fmt.Errorf("plugin-config/config.json: %w", err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	points := []string{"/run/docker/plugins", "/etc", "/tmp", c.PropagatedMount}
	for _, m := range c.Mounts {
		points = append(points, m.Destination)
	}
	for _, p := range points {
		if err := os.MkdirAll(filepath.Join(rootfs, p), 0o755); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(vxnetBin)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "vxnet"), bin, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), conf, 0o644)
}

// installManaged creates, configures and enables the plugin on h with the
// given `docker plugin set` settings on top of the test's own. The
// host's /run/vxnet stand-in is made a shared mount in the host's mount
// namespace first, as systemd makes /run on a real host.
func installManaged(t *testing.T, h *harness.Host, settings ...string) *managedPlugin {
	t.Helper()
	dir := t.TempDir()
	if err := buildPluginDir(dir); err != nil {
		t.Fatalf("plugin dir: %v", err)
	}
	m := &managedPlugin{h: h, dir: dir, hostRun: filepath.Join(h.RunDir(), "hostrun")}
	h.MustExec(t, "sh", "-c", fmt.Sprintf("mkdir -p %[1]s && mount --bind %[1]s %[1]s && mount --make-shared %[1]s", m.hostRun))
	h.MustDocker(t, "plugin", "create", managedName, dir)
	set := append([]string{"plugin", "set", managedName, "run.source=" + m.hostRun,
		"VXNET_ADVERTISE_ADDR=" + h.IP, "VXNET_LOG_LEVEL=debug"}, settings...)
	h.MustDocker(t, set...)
	m.id = h.MustDocker(t, "plugin", "inspect", "-f", "{{.Id}}", managedName)
	m.enable(t)
	return m
}

func (m *managedPlugin) enable(t *testing.T) {
	t.Helper()
	m.h.MustDocker(t, "plugin", "enable", managedName)
	if got := m.h.MustDocker(t, "plugin", "inspect", "-f", "{{.Enabled}}", managedName); got != "true" {
		t.Fatalf("plugin enabled = %q", got)
	}
}

func (m *managedPlugin) disable(t *testing.T, force bool) {
	t.Helper()
	args := []string{"plugin", "disable", managedName}
	if force {
		args = append(args, "-f")
	}
	m.h.MustDocker(t, args...)
}

// netnsDir is where the plugin's namespace files are, in the host's mount
// namespace.
func (m *managedPlugin) netnsDir() string { return filepath.Join(m.hostRun, "netns") }

// db is the bolt file in the plugin's propagated mount, on disk in the
// host's data root.
func (m *managedPlugin) db() string {
	return filepath.Join(m.h.DataRoot(), "plugins", m.id, "propagated-mount", "vxnet.db")
}

// namespaces lists the namespace files and the nsfs mounts below hostRun,
// as the host's mount namespace sees them.
func (m *managedPlugin) namespaces() ([]string, error) {
	out, err := m.h.Exec("ls", "-A", m.netnsDir())
	if err != nil && !strings.Contains(out, "No such file") {
		return nil, err
	}
	left := strings.Fields(out)
	mounts, err := m.h.Exec("cat", "/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(mounts, "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], m.hostRun+"/") && strings.Contains(line, " - nsfs ") {
			left = append(left, "nsfs mount "+f[4])
		}
	}
	return left, nil
}

// kernelLeaks names what vxnet left on the host: namespace files and
// mounts, veths in the host namespace, Docker networks of the driver.
func (m *managedPlugin) kernelLeaks() error {
	leaks, err := m.namespaces()
	if err != nil {
		return err
	}
	return hostLeaks(m.h, managedName, leaks)
}

// storeKeys disables the plugin (bbolt allows one process) and lists the
// keys of its bolt file.
func (m *managedPlugin) storeKeys(t *testing.T) []string {
	t.Helper()
	m.disable(t, false)
	return m.dbKeys(t)
}

// dbKeys lists the keys of the bolt file of the disabled plugin.
func (m *managedPlugin) dbKeys(t *testing.T) []string {
	t.Helper()
	if _, err := os.Stat(m.db()); err != nil {
		t.Fatalf("the plugin's store file: %v", err) // bolt.Open would make an empty one
	}
	s, err := bolt.Open(m.db())
	if err != nil {
		t.Fatalf("open the plugin's store: %v", err)
	}
	defer s.Close()
	kvs, _, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	sort.Strings(keys)
	return keys
}

// managedNet creates a network on the managed driver and IPAM and removes
// it when the test ends.
func managedNet(t *testing.T, h *harness.Host, name, subnet string, extra ...string) {
	t.Helper()
	args := append([]string{"network", "create", "-d", managedName, "--ipam-driver", managedName, "--subnet", subnet}, extra...)
	h.MustDocker(t, append(args, name)...)
	t.Cleanup(func() { _, _ = h.Docker("network", "rm", name) })
}

// TestManagedPlugin runs vxnet the way Docker users install it: `docker
// plugin create` + `set` + `enable` on dockerd (20.10 or 26.1), the bolt
// store in the propagated mount. Single-host essentials, then disable -f /
// enable under traffic; the leak check covers namespaces, links, Docker
// networks and, with the plugin disabled, the store file.
func TestManagedPlugin(t *testing.T) {
	c := harness.Start(t, 1)
	h := c.Hosts[0]
	m := installManaged(t, h)
	c.AddLeakCheck("vxnet managed plugin", func(*harness.Host) error { return m.kernelLeaks() })
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *managedPlugin)
	}{
		{"Names", testManagedNames},
		{"PingAndPublish", testManagedPingAndPublish},
		{"DisableEnableUnderTraffic", testManagedDisableEnable},
	} {
		ok := t.Run(tc.name, func(t *testing.T) { tc.fn(t, m) })
		c.LeakCheck(t)
		if !ok {
			t.Logf("dockerd log tail (plugin lines included):\n%s", managedTail(h.DockerdLog(), 60))
		}
	}
	if keys := m.storeKeys(t); len(keys) != 0 {
		t.Errorf("store keys left behind: %v", keys)
	}
}

// testManagedNames: the driver is known by its full name only, and the
// plugin's output reaches dockerd's log at level=error (README says so).
func testManagedNames(t *testing.T, m *managedPlugin) {
	h := m.h
	out, err := h.Docker("network", "create", "-d", "vxnet", "--ipam-driver", "vxnet", "--subnet", "198.19.5.0/24", "untagged")
	if err == nil {
		_, _ = h.Docker("network", "rm", "untagged")
		t.Errorf("-d vxnet without the tag was accepted by dockerd %s", h.MustDocker(t, "version", "-f", "{{.Server.Version}}"))
	} else if !strings.Contains(out, "could not resolve driver vxnet in registry") {
		t.Errorf("-d vxnet without the tag: %q", out)
	}
	log, err := os.ReadFile(h.DockerdLog())
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`level=error msg="time=\S+ level=info msg=\\"vxnet serving\\".*plugin=` + m.id)
	if !want.Match(log) {
		t.Errorf("dockerd log has no line matching %s", want)
	}
}

func testManagedPingAndPublish(t *testing.T, m *managedPlugin) {
	h := m.h
	managedNet(t, h, "mnet", "198.19.5.0/24")
	if got := h.MustDocker(t, "network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}}", "mnet"); got != managedName+" "+managedName {
		t.Fatalf("driver and IPAM: %q", got)
	}
	runC(t, h, "m1", append([]string{"--network", "mnet"}, sleeper...)...)
	runC(t, h, "mweb", "--network", "mnet", "-p", "18090:80", harness.Image,
		"sh", "-c", "echo hello-managed > /tmp/index.html && exec httpd -f -p 80 -h /tmp")
	if a := ip(t, h, "m1", "mnet"); !strings.HasPrefix(a, "198.19.5.") {
		t.Fatalf("m1 has address %q", a)
	}
	h.MustDocker(t, "exec", "m1", "ping", "-c2", "-W2", "mweb")
	if ns, err := m.namespaces(); err != nil || len(ns) == 0 || !strings.HasPrefix(ns[0], "vx-") {
		t.Fatalf("no namespace file below the host's run dir: %v %v", ns, err)
	}
	url := fmt.Sprintf("http://%s:18090/index.html", h.IP)
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = strings.TrimSpace(string(b)); body == "hello-managed" {
			break
		}
	}
	if body != "hello-managed" {
		t.Fatalf("GET %s from outside the host: %q", url, body)
	}
	for _, name := range []string{"m1", "mweb"} {
		h.MustDocker(t, "rm", "-f", name)
	}
	h.MustDocker(t, "network", "rm", "mnet")
}

// testManagedDisableEnable: `docker plugin disable -f` stops the plugin
// (dockerd unmounts everything below the plugin's directory); containers
// keep their traffic because the namespaces are mounted below the host's
// /run, and after enable new containers and networks work.
func testManagedDisableEnable(t *testing.T, m *managedPlugin) {
	h := m.h
	managedNet(t, h, "dnet", "198.19.6.0/24")
	runC(t, h, "d1", append([]string{"--network", "dnet"}, sleeper...)...)
	runC(t, h, "d2", append([]string{"--network", "dnet"}, sleeper...)...)
	ipD2 := ip(t, h, "d2", "dnet")
	pingAcross(t, h, "d1", ipD2, 50, "disable -f / enable", func() {
		m.disable(t, true)
		if got := h.MustDocker(t, "plugin", "inspect", "-f", "{{.Enabled}}", managedName); got != "false" {
			t.Errorf("after disable -f the plugin is enabled=%s", got)
		}
		// The store is in the propagated mount, on disk: the network is there
		// while the plugin is down.
		if keys := strings.Join(m.dbKeys(t), " "); !strings.Contains(keys, "networks/198.19.6.0") {
			t.Errorf("store of the disabled plugin lacks network 198.19.6.0/24: %s", keys)
		}
		time.Sleep(time.Second)
		m.enable(t)
	})
	// New containers on the old network, and a new network, after enable.
	h.MustDocker(t, "run", "--rm", "--network", "dnet", harness.Image, "ping", "-c1", "-W2", ipD2)
	managedNet(t, h, "dnet2", "198.19.7.0/24")
	runC(t, h, "d3", append([]string{"--network", "dnet2"}, sleeper...)...)
	h.MustDocker(t, "run", "--rm", "--network", "dnet2", harness.Image, "ping", "-c1", "-W2", "d3")
	for _, name := range []string{"d1", "d2", "d3"} {
		h.MustDocker(t, "rm", "-f", name)
	}
	h.MustDocker(t, "network", "rm", "dnet", "dnet2")
}

// managedTail returns the last n lines of a file, or why it cannot.
func managedTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

const managedHelperEnv = "VXE2E_MANAGED_KILLED_RUN"

// TestManagedKilledRunHelper is the run TestManagedCleanupAfterKill
// kills: the managed plugin enabled with a network and a container.
func TestManagedKilledRunHelper(t *testing.T) {
	if os.Getenv(managedHelperEnv) != "1" {
		return // the subprocess entry point of TestManagedCleanupAfterKill
	}
	c := harness.Start(t, 1)
	h := c.Hosts[0]
	m := installManaged(t, h)
	managedNet(t, h, "knet", "198.19.5.0/24")
	runC(t, h, "k1", append([]string{"--network", "knet"}, sleeper...)...)
	cpid := h.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", "k1")
	ppid, err := managedPid(h)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("VXNET-MANAGED-READY %d %s %s\n", ppid, cpid, m.dir)
	time.Sleep(5 * time.Minute)
}

// managedPid finds the managed plugin's process: vxnet serve in the
// host's network namespace.
func managedPid(h *harness.Host) (int, error) {
	want, err := os.Stat(h.NetnsPath())
	if err != nil {
		return 0, err
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, _ := os.ReadFile(d + "/cmdline")
		if !strings.HasPrefix(string(cmd), "/vxnet\x00serve\x00") {
			continue
		}
		if ns, err := os.Stat(d + "/ns/net"); err == nil && os.SameFile(ns, want) {
			var pid int
			fmt.Sscan(filepath.Base(d), &pid)
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no vxnet plugin process in the network namespace of %s", h.Name)
}

// TestManagedCleanupAfterKill SIGKILLs a test process with the managed
// plugin enabled, so no teardown runs (no disable, no unmount), and checks
// that the next Start's Cleanup leaves nothing of it: the plugin process,
// its container, and the mounts of its plugin directory.
func TestManagedCleanupAfterKill(t *testing.T) {
	harness.Require(t)
	var pids []int
	var dir string
	harness.RunKilled(t, "TestManagedKilledRunHelper", []string{managedHelperEnv + "=1"}, 3*time.Minute, func(line string) bool {
		var p, c int
		if n, _ := fmt.Sscanf(line, "VXNET-MANAGED-READY %d %d %s", &p, &c, &dir); n != 3 {
			return false
		}
		pids = []int{p, c}
		return true
	})
	if parent := filepath.Dir(dir); strings.HasPrefix(filepath.Base(parent), "TestManagedKilledRunHelper") {
		defer os.RemoveAll(parent) // the killed run's t.TempDir
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("pid %d died with the killed run: the simulation is broken", pid)
		}
	}
	c := harness.Start(t, 1) // its Cleanup fails the test if anything is left
	for i, what := range []string{"plugin", "container"} {
		if alive(pids[i]) {
			t.Errorf("%s of the killed run (pid %d) still running", what, pids[i])
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

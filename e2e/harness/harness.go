// Package harness runs a cluster of Docker hosts on one machine for vxnet's
// end-to-end tests.
//
// What it owns: everything named vxe2e-*. Each host is a network namespace
// vxe2e-hN joined by a veth pair (vxe2e-hN-veth in the root namespace, eth0
// inside) to the underlay bridge vxe2e-br. The bridge has 198.18.0.1/24 and
// host N has 198.18.0.(10+N)/24 with a default route via the bridge. Each
// host runs its own dockerd (and the containerd it manages) in that network
// namespace and in a private mount namespace that holds a tmpfs on
// /run/docker/plugins, so a socket plugin started on one host is seen by that
// host's Docker only. Per-host state lives in /run/vxe2e-hN (sockets,
// pidfiles, plugin state) and /var/lib/vxe2e-hN (Docker's data root).
// Multi-host tests add a Consul server node (StartConsul): namespace
// vxe2e-consul at 198.18.0.2 on the same bridge, data in
// /var/lib/vxe2e-consul; or a cluster (StartConsulCluster): three servers
// in vxe2e-consul1..3 at 198.18.0.2..4 and a client agent in every host's
// namespace on 127.0.0.1:8500, as production runs Consul.
//
// Invariants:
//   - Only loopback and 198.18.0.0/24 are used on the underlay; Docker's own
//     address pool is 198.19.128.0/17, so overlay tests should take their
//     subnets from 198.19.0.0/17. No other interface of the machine is
//     touched and no sysctl outside the host namespaces is changed.
//   - Every process the harness starts either has a pidfile under
//     /run/vxe2e-* or runs in a vxe2e-* namespace or below a process that
//     names /run/vxe2e-* on its command line; Cleanup finds leftovers of a
//     killed run by these names alone, so a run that died (timeout, SIGKILL)
//     is cleaned up by the next Start.
//   - The mount namespace of each host is pinned by a bind mount on
//     /run/vxe2e-hN/mntns, so commands and plugins can enter it while
//     dockerd is down and a restarted dockerd sees the same plugin sockets.
//   - One cluster at a time per machine: Start takes an flock on
//     /run/lock/vxnet-e2e.lock (also across test binaries run in parallel by
//     `go test ./...`) and holds it until the cluster is torn down.
//
// Which Docker: the hosts run the dockerd named by VXNET_DOCKERD (dockerd
// from PATH when unset) with the docker-proxy beside it as its
// --userland-proxy-path, and the docker CLI, containerd and runc from PATH;
// every test logs that dockerd's `--version`. The dockerd flags and the
// config file are the same for every version (20.10 and 26.1 are tested).
//
// The harness drives the same tools an operator would (ip, nsenter, the
// docker CLI) instead of calling setns itself, so the test process never
// changes namespace and needs no locked threads.
package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxnet/vxnet/internal/testenv"
)

// Image is the busybox image imported into every host by Start.
const Image = "vxnet-test/busybox"

// Gateway is the underlay bridge's address, reachable from every host.
const Gateway = "198.18.0.1"

const (
	namePrefix   = "vxe2e-"
	bridgeName   = "vxe2e-br"
	bridgeCIDR   = Gateway + "/24"
	underlayMask = "/24"
	dockerPool   = "base=198.19.128.0/17,size=24"
	maxHosts     = 32
	lockPath     = "/run/lock/vxnet-e2e.lock"
	lockWait     = 5 * time.Minute // VXE2E_LOCK_WAIT overrides it
)

// Options configure a cluster; the zero value of every field but Hosts
// picks a default.
type Options struct {
	// Hosts is the number of Docker hosts, 1 to 32.
	Hosts int
	// StorageDriver for dockerd; overlay2 unless set.
	StorageDriver string
	// DockerdLogLevel; debug unless set (plugin calls are logged at debug).
	DockerdLogLevel string
	// DockerdArgs are appended to every dockerd's command line.
	DockerdArgs []string
	// CommandTimeout bounds Docker, Exec and other one-shot commands; 60s
	// unless set.
	CommandTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.StorageDriver == "" {
		o.StorageDriver = "overlay2"
	}
	if o.DockerdLogLevel == "" {
		o.DockerdLogLevel = "debug"
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = 60 * time.Second
	}
	return o
}

// Cluster is a set of Docker hosts on one underlay bridge.
type Cluster struct {
	Hosts []*Host
	// LogDir holds dockerd and process logs. It is removed after a passing
	// test unless VXE2E_LOG_DIR chose it.
	LogDir string

	t          testing.TB
	opts       Options
	bin        dockerdBin
	keepLogs   bool
	lock       *os.File
	checksMu   sync.Mutex
	leakChecks []leakCheck
	closeOnce  sync.Once
	closed     atomic.Bool
	closeErr   error
	// consuls are the Consul agents started, stopped at teardown.
	consuls       []*Consul
	consulStarted bool
}

// Start is StartWith(t, Options{Hosts: n}).
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, Options{Hosts: n})
}

// StartWith removes leftovers of earlier runs, builds the hosts and imports
// Image into each. It registers a t.Cleanup that tears everything down,
// also when the test fails or setup stops half way. Missing prerequisites
// skip the test (fail it when CI=true).
func StartWith(t testing.TB, o Options) *Cluster {
	t.Helper()
	Require(t)
	if o.Hosts < 1 || o.Hosts > maxHosts {
		t.Fatalf("harness: %d hosts asked, want 1 to %d", o.Hosts, maxHosts)
	}
	bin, err := findDockerd()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Logf("harness: hosts run %s: %s", bin.path, bin.banner)
	wait, err := lockWaitFromEnv()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	lock, err := acquireLock(t, lockPath, wait)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	began := time.Now()
	c := &Cluster{t: t, opts: o.withDefaults(), bin: bin, lock: lock}
	t.Cleanup(func() {
		// A test that called Close itself has seen its error already.
		first := !c.closed.Load()
		if err := c.Close(); err != nil && first {
			t.Errorf("harness teardown: %v", err)
		}
	})
	if err := c.makeLogDir(t.Name()); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := Cleanup(); err != nil {
		t.Fatalf("harness: clean leftovers of an earlier run: %v", err)
	}
	if err := c.build(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Logf("harness: %d hosts up in %s, logs in %s", o.Hosts, time.Since(began).Round(time.Millisecond), c.LogDir)
	return c
}

func (c *Cluster) makeLogDir(testName string) error {
	safe := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(testName, "_")
	if base := os.Getenv("VXE2E_LOG_DIR"); base != "" {
		c.LogDir, c.keepLogs = filepath.Join(base, safe), true
		if err := os.MkdirAll(c.LogDir, 0o755); err != nil {
			return fmt.Errorf("create log dir %q: %w", c.LogDir, err)
		}
		return nil
	}
	dir, err := os.MkdirTemp("", "vxnet-e2e-"+safe+"-")
	if err != nil {
		return fmt.Errorf("create log dir: %w", err)
	}
	c.LogDir = dir
	return nil
}

// build creates the underlay, then starts and fills every host's dockerd
// in parallel. Whatever it made is undone by Close.
func (c *Cluster) build() error {
	if err := createBridge(); err != nil {
		return err
	}
	for i := 1; i <= c.opts.Hosts; i++ {
		h := newHost(i, c.LogDir, c.opts, c.bin)
		c.Hosts = append(c.Hosts, h)
		if err := h.createUnderlay(); err != nil {
			return err
		}
	}
	tarball, err := imageTar()
	if err != nil {
		return err
	}
	return c.eachHost(func(h *Host) error {
		if err := h.StartDockerd(); err != nil {
			return err
		}
		if err := h.importImage(tarball); err != nil {
			return err
		}
		return h.snapshotLinks()
	})
}

// eachHost runs f for every host in parallel and joins the errors.
func (c *Cluster) eachHost(f func(h *Host) error) error {
	errs := make([]error, len(c.Hosts))
	var wg sync.WaitGroup
	for i, h := range c.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(h)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close tears the cluster down: containers, dockerd, started processes,
// then everything named vxe2e-*, and checks that nothing is left. It is
// idempotent; Start registers it with t.Cleanup, tests may call it earlier.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.teardown()
	})
	return c.closeErr
}

func (c *Cluster) teardown() error {
	defer releaseLock(c.lock)
	began := time.Now()
	var errs []error
	errs = append(errs, c.eachHost(func(h *Host) error {
		h.removeContainers()
		return errors.Join(h.StopDockerd(), h.stopProcs())
	}))
	for _, cs := range c.consulAgents() {
		errs = append(errs, cs.Stop())
	}
	stopped := time.Since(began)
	failed := c.t.Failed() || errors.Join(errs...) != nil
	if failed {
		c.dumpLogs()
	}
	errs = append(errs, Cleanup())
	c.t.Logf("harness: teardown in %s (dockerd and processes stopped in %s)", time.Since(began).Round(time.Millisecond), stopped.Round(time.Millisecond))
	if c.LogDir != "" && !c.keepLogs && !failed && !c.t.Failed() {
		errs = append(errs, os.RemoveAll(c.LogDir))
	}
	return errors.Join(errs...)
}

// dumpLogs prints the tail of every log of the cluster to the test log.
func (c *Cluster) dumpLogs() {
	for _, h := range c.Hosts {
		c.t.Logf("harness: %s dockerd log %s, last lines:\n%s", h.Name, h.DockerdLog(), tailFile(h.DockerdLog(), 40))
		for _, p := range h.Procs() {
			c.t.Logf("harness: %s process %q log %s, last lines:\n%s", h.Name, p.Name, p.LogPath(), p.LogTail())
		}
	}
	for _, cs := range c.consulAgents() {
		c.t.Logf("harness: consul %s log %s, last lines:\n%s", cs.Name, cs.LogPath(), cs.LogTail())
	}
	c.t.Logf("harness: logs kept in %s", c.LogDir)
}

// Require skips the test when the machine cannot run the harness: not root,
// a tool missing, or no dockerd in PATH with docker-proxy beside it. With
// CI=true it fails the test instead, so a CI run never passes without
// running. A DockerdEnv that names no usable dockerd always fails.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (euid 0)")
	}
	if _, err := findDockerd(); err != nil {
		if os.Getenv(DockerdEnv) != "" {
			t.Fatalf("harness: %v", err) // asked for, so never a skip
		}
		missing = append(missing, err.Error())
	}
	for _, tool := range []string{"docker", "containerd", "runc", "nsenter", "unshare", "ip", "iptables", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" in PATH")
		}
	}
	if err := checkStaticBusybox(busyboxPath); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) == 0 {
		return
	}
	testenv.Missing(t, "e2e harness prerequisites missing: %s", strings.Join(missing, ", "))
}

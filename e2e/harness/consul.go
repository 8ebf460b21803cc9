package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Consul node: network namespace vxe2e-consul with eth0 198.18.0.2/24
// on the underlay bridge (root end vxe2e-cs-veth; link names have at most
// 15 characters), one real server (not -dev) with its data in
// /var/lib/vxe2e-consul, so a restart keeps the KV store. Every name is
// vxe2e-*, so Cleanup finds a killed run's Consul by its namespace, its
// pidfile and its command line (-data-dir /var/lib/vxe2e-consul/...).
const (
	consulName      = namePrefix + "consul"
	consulVeth      = namePrefix + "cs-veth"
	ConsulIP        = "198.18.0.2"
	consulHTTPPort  = "8500"
	consulReadyWait = 60 * time.Second
	consulStopGrace = 15 * time.Second
	consulScript    = "hack/consul.sh"
	consulBuildWait = 15 * time.Minute
)

// Consul is a single Consul server on the underlay, for multi-host tests.
type Consul struct {
	bin     string
	logPath string

	mu sync.Mutex
	d  *daemon
}

// ConsulBinary is the path hack/consul.sh prints: the cached build, or one
// it builds (minutes, with the Go module proxy) when the cache is empty.
var ConsulBinary = sync.OnceValues(consulBinary)

func consulBinary() (string, error) {
	script, err := findUp(consulScript)
	if err != nil {
		return "", err
	}
	out, err := run(consulBuildWait, nil, script)
	if err != nil {
		return "", err
	}
	lines := strings.Split(out, "\n")
	bin := strings.TrimSpace(lines[len(lines)-1])
	fi, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, bin, err)
	}
	if fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s printed %q, which is not executable", script, bin)
	}
	return bin, nil
}

// findUp looks for rel in the working directory and its parents (a test
// runs in its package's directory, below the module root).
func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s in the working directory or above", rel)
		}
		dir = parent
	}
}

// StartConsul creates the Consul node and starts its server, waiting until
// it has elected itself leader. Teardown stops it and removes its
// namespace, link and data. Without a Consul binary the test is skipped
// (failed when CI=true).
func (c *Cluster) StartConsul(t testing.TB) *Consul {
	t.Helper()
	bin, err := ConsulBinary()
	if err != nil {
		msg := "e2e: no Consul binary (hack/consul.sh builds it): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: failing instead of skipping)")
		}
		t.Skip(msg)
	}
	cs := &Consul{bin: bin, logPath: filepath.Join(c.LogDir, consulName+".log")}
	if !c.consul.CompareAndSwap(nil, cs) {
		t.Fatal("harness: StartConsul called twice")
	}
	if err := createConsulNode(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	began := time.Now()
	cs.Start(t)
	t.Logf("harness: consul up at %s in %s", cs.Addr(), time.Since(began).Round(time.Millisecond))
	return cs
}

// createConsulNode makes the namespace, plugs it into the bridge and
// creates the directories.
func createConsulNode() error {
	steps := [][]string{
		{"netns", "add", consulName},
		{"link", "add", consulVeth, "type", "veth", "peer", "name", "eth0", "netns", consulName},
		{"link", "set", consulVeth, "master", bridgeName, "up"},
		{"-n", consulName, "link", "set", "lo", "up"},
		{"-n", consulName, "addr", "add", ConsulIP + underlayMask, "dev", "eth0"},
		{"-n", consulName, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if _, err := ipCmd(s...); err != nil {
			return fmt.Errorf("create consul node %s: %w", ConsulIP, err)
		}
	}
	for _, d := range []string{consulDataDir(), consulProcDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create consul node: %w", err)
		}
	}
	return nil
}

func consulDataDir() string { return "/var/lib/" + consulName + "/data" }
func consulProcDir() string { return "/run/" + consulName + "/procs" }
func consulPidfile() string { return filepath.Join(consulProcDir(), "consul.pid") }

// Addr is the HTTP API address, host:port.
func (cs *Consul) Addr() string { return ConsulIP + ":" + consulHTTPPort }

// LogPath is the file the server's output goes to (appended on restarts).
func (cs *Consul) LogPath() string { return cs.logPath }

// LogTail returns the last 40 lines of the server's log.
func (cs *Consul) LogTail() string { return tailFile(cs.logPath, 40) }

func (cs *Consul) args() []string {
	return []string{"--net=/run/netns/" + consulName, "--", cs.bin, "agent",
		"-server", "-bootstrap-expect", "1",
		"-bind", ConsulIP, "-client", ConsulIP,
		"-data-dir", consulDataDir(), "-node", consulName,
		"-dns-port", "-1",
		// No call home (there is no route out anyway).
		"-hcl", "disable_update_check = true",
		// Production Raft timing: elected in ~1s instead of ~6s after a
		// (re)start.
		"-hcl", "performance { raft_multiplier = 1 }",
	}
}

// Start starts the server (again, after Stop or Kill: on the same data)
// and waits until it has a leader.
func (cs *Consul) Start(t testing.TB) {
	t.Helper()
	if err := cs.start(); err != nil {
		t.Fatalf("harness: %v\nlast lines of %s:\n%s", err, cs.logPath, cs.LogTail())
	}
}

func (cs *Consul) start() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.d != nil && !cs.d.exited() {
		return errors.New("start consul: already running")
	}
	d, err := startLogged(cs.logPath, "nsenter", cs.args(), cmdEnv())
	if err != nil {
		return fmt.Errorf("start consul: %w", err)
	}
	cs.d = d
	if err := writePidfile(consulPidfile(), d.cmd.Process.Pid); err != nil {
		d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("start consul: %w", err)
	}
	deadline := time.Now().Add(consulReadyWait)
	var last error
	for {
		leader, err := cs.leader()
		if err == nil && leader != "" {
			return nil
		}
		last = err
		if err == nil {
			last = errors.New("no leader yet")
		}
		select {
		case <-d.done:
			return fmt.Errorf("start consul: exited before electing a leader: %v", d.err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start consul: no leader at %s after %s: %v", cs.Addr(), consulReadyWait, last)
		}
	}
}

// leader returns the leader's address ("" while there is none).
func (cs *Consul) leader() (string, error) {
	body, code, err := httpGet("http://"+cs.Addr()+"/v1/status/leader", time.Second)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET /v1/status/leader: %d %s", code, body)
	}
	var leader string
	if err := json.Unmarshal(body, &leader); err != nil {
		return "", fmt.Errorf("GET /v1/status/leader: %q: %w", body, err)
	}
	return leader, nil
}

// Stop stops the server with SIGTERM (SIGKILL after 15s) and waits. A
// server that is not running is no error.
func (cs *Consul) Stop() error {
	return cs.signal(syscall.SIGTERM, consulStopGrace)
}

// Kill kills the server with SIGKILL, as a crash would, and waits.
func (cs *Consul) Kill() error {
	return cs.signal(syscall.SIGKILL, 0)
}

func (cs *Consul) signal(sig syscall.Signal, grace time.Duration) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.d == nil {
		return nil
	}
	if err := signalAndWait(cs.d.cmd.Process, cs.d.done, sig, grace); err != nil {
		return fmt.Errorf("stop consul: %w", err)
	}
	os.Remove(consulPidfile())
	return nil
}

// Keys lists the keys under prefix (GET /v1/kv/<prefix>?keys), sorted.
func (cs *Consul) Keys(prefix string) ([]string, error) {
	return ConsulKeys(cs.Addr(), prefix)
}

// ConsulKeys lists the keys under prefix of the Consul at addr (host:port).
func ConsulKeys(addr, prefix string) ([]string, error) {
	body, code, err := httpGet("http://"+addr+"/v1/kv/"+strings.TrimPrefix(prefix, "/")+"?keys", 5*time.Second)
	if err != nil {
		return nil, err
	}
	switch code {
	case http.StatusNotFound:
		return nil, nil
	case http.StatusOK:
	default:
		return nil, fmt.Errorf("list consul keys under %q: %d %s", prefix, code, body)
	}
	var keys []string
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, fmt.Errorf("list consul keys under %q: %w", prefix, err)
	}
	return keys, nil
}

// consulClient ignores HTTP_PROXY: the node is on the harness's own bridge.
var consulClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func httpGet(url string, timeout time.Duration) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := consulClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

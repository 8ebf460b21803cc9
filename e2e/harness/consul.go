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

	"github.com/vxnet/vxnet/internal/testenv"
)

// The Consul node: network namespace vxe2e-consul with eth0 198.18.0.2/24
// on the underlay bridge (root end vxe2e-cs-veth; link names have at most
// 15 characters), one real server (not -dev) with its data in
// /var/lib/vxe2e-consul, so a restart keeps the KV store. Every name is
// vxe2e-*, so Cleanup finds a killed run's Consul by its namespace, its
// pidfile and its command line (-data-dir /var/lib/vxe2e-consul/...).
// StartConsulCluster (consulcluster.go) makes three such server nodes and
// a client agent on every Docker host instead.
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

// Consul is one Consul agent on the underlay: a server in a node namespace
// of its own, or a client agent in a Docker host's namespace.
type Consul struct {
	Name string // node name; a server's namespace has the same name
	IP   string // bind (gossip, RPC) address on the underlay

	bin       string
	logPath   string
	netns     string   // network namespace file the agent runs in
	dir       string   // state dir: data/ and procs/ below it
	server    bool     // a server (else a client agent)
	expect    int      // -bootstrap-expect of a server
	join      []string // -retry-join addresses
	clientIPs []string // -client addresses; the HTTP API listens on each

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

// requireConsul returns the Consul binary, or skips the test (fails it
// when CI=true).
func requireConsul(t testing.TB) string {
	t.Helper()
	bin, err := ConsulBinary()
	if err != nil {
		testenv.Missing(t, "e2e: no Consul binary (hack/consul.sh builds it): %v", err)
	}
	return bin
}

// StartConsul creates the Consul node and starts its server, waiting until
// it has elected itself leader. Teardown stops it and removes its
// namespace, link and data. Without a Consul binary the test is skipped
// (failed when CI=true).
func (c *Cluster) StartConsul(t testing.TB) *Consul {
	t.Helper()
	bin := requireConsul(t)
	cs := &Consul{
		Name: consulName, IP: ConsulIP, bin: bin,
		logPath: filepath.Join(c.LogDir, consulName+".log"),
		netns:   "/run/netns/" + consulName, dir: "/var/lib/" + consulName,
		server: true, expect: 1, clientIPs: []string{ConsulIP},
	}
	if !c.addConsul(cs) {
		t.Fatal("harness: StartConsul called twice")
	}
	if err := createConsulNode(consulName, consulVeth, ConsulIP); err != nil {
		t.Fatalf("harness: %v", err)
	}
	began := time.Now()
	cs.Start(t)
	t.Logf("harness: consul up at %s in %s", cs.Addr(), time.Since(began).Round(time.Millisecond))
	return cs
}

// addConsul registers an agent for teardown; only one Consul setup per
// cluster.
func (c *Cluster) addConsul(cs ...*Consul) bool {
	c.checksMu.Lock()
	defer c.checksMu.Unlock()
	if c.consulStarted {
		return false
	}
	c.consulStarted = true
	c.consuls = append(c.consuls, cs...)
	return true
}

// consulAgents lists the agents to stop at teardown, clients first.
func (c *Cluster) consulAgents() []*Consul {
	c.checksMu.Lock()
	defer c.checksMu.Unlock()
	var out []*Consul
	for _, server := range []bool{false, true} {
		for _, cs := range c.consuls {
			if cs.server == server {
				out = append(out, cs)
			}
		}
	}
	return out
}

// createConsulNode makes a server node's namespace, plugs it into the
// bridge (root end veth) with address ip.
func createConsulNode(name, veth, ip string) error {
	steps := [][]string{
		{"netns", "add", name},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name},
		{"link", "set", veth, "master", bridgeName, "up"},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "addr", "add", ip + underlayMask, "dev", "eth0"},
		{"-n", name, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if _, err := ipCmd(s...); err != nil {
			return fmt.Errorf("create consul node %s (%s): %w", name, ip, err)
		}
	}
	return nil
}

func (cs *Consul) dataDir() string { return filepath.Join(cs.dir, "data") }

// procDir holds the pidfile: /run/<node>/procs (a client agent's node name
// is its host's, so that is the host's run dir).
func (cs *Consul) procDir() string { return "/run/" + cs.Name + "/procs" }
func (cs *Consul) pidfile() string { return filepath.Join(cs.procDir(), "consul.pid") }

// Addr is the HTTP API address, host:port, reachable from the test
// process and from every host.
func (cs *Consul) Addr() string { return cs.clientIPs[len(cs.clientIPs)-1] + ":" + consulHTTPPort }

// IsServer tells a server from a client agent.
func (cs *Consul) IsServer() bool { return cs.server }

// LogPath is the file the agent's output goes to (appended on restarts).
func (cs *Consul) LogPath() string { return cs.logPath }

// LogTail returns the last 40 lines of the agent's log.
func (cs *Consul) LogTail() string { return tailFile(cs.logPath, 40) }

func (cs *Consul) args() []string {
	args := []string{"--net=" + cs.netns, "--", cs.bin, "agent"}
	if cs.server {
		args = append(args, "-server", "-bootstrap-expect", fmt.Sprint(cs.expect))
	}
	for _, j := range cs.join {
		args = append(args, "-retry-join", j)
	}
	return append(args,
		"-bind", cs.IP, "-client", strings.Join(cs.clientIPs, " "),
		"-data-dir", cs.dataDir(), "-node", cs.Name,
		"-dns-port", "-1",
		// No call home (there is no route out anyway).
		"-hcl", "disable_update_check = true",
		// Production Raft timing: elected in ~1s instead of ~6s after a
		// (re)start.
		"-hcl", "performance { raft_multiplier = 1 }",
	)
}

// Start starts the agent (again, after Stop or Kill: on the same data)
// and waits until it knows a leader.
func (cs *Consul) Start(t testing.TB) {
	t.Helper()
	if err := cs.start(); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

func (cs *Consul) start() error {
	if err := cs.launch(); err != nil {
		return err
	}
	if err := cs.waitLeader(consulReadyWait); err != nil {
		return err
	}
	return cs.waitConsistent(consulReadyWait)
}

// waitConsistent waits until a consistent read works: a restarted server
// names itself leader before it has applied its log again, and a read in
// default mode then answers from an empty state (seen in CI: the keys of
// TestConsulNode missing right after a kill and restart).
func (cs *Consul) waitConsistent(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		_, code, err := httpGet("http://"+cs.Addr()+"/v1/kv/vxe2e-ready?consistent", time.Second)
		if err == nil && (code == http.StatusOK || code == http.StatusNotFound) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consul %s: no consistent read at %s after %s (last: %d, %v)", cs.Name, cs.Addr(), wait, code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// launch starts the agent's process without waiting for it to be ready.
func (cs *Consul) launch() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.d != nil && !cs.d.exited() {
		return fmt.Errorf("start consul %s: already running", cs.Name)
	}
	for _, d := range []string{cs.dataDir(), cs.procDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("start consul %s: %w", cs.Name, err)
		}
	}
	d, err := startLogged(cs.logPath, "nsenter", cs.args(), cmdEnv())
	if err != nil {
		return fmt.Errorf("start consul %s: %w", cs.Name, err)
	}
	cs.d = d
	if err := writePidfile(cs.pidfile(), d.cmd.Process.Pid); err != nil {
		d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("start consul %s: %w", cs.Name, err)
	}
	return nil
}

// waitLeader waits until the agent's HTTP API names a leader.
func (cs *Consul) waitLeader(wait time.Duration) error {
	cs.mu.Lock()
	d := cs.d
	cs.mu.Unlock()
	deadline := time.Now().Add(wait)
	var last error
	for {
		leader, err := cs.Leader()
		if err == nil && leader != "" {
			return nil
		}
		last = err
		if err == nil {
			last = errors.New("no leader yet")
		}
		select {
		case <-d.done:
			return fmt.Errorf("consul %s exited before knowing a leader: %v\nlast lines of %s:\n%s", cs.Name, d.err, cs.logPath, cs.LogTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consul %s: no leader at %s after %s: %v\nlast lines of %s:\n%s", cs.Name, cs.Addr(), wait, last, cs.logPath, cs.LogTail())
		}
	}
}

// Leader returns the leader's RPC address (ip:8300) as this agent sees it,
// "" while there is none.
func (cs *Consul) Leader() (string, error) {
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

// Running tells whether the agent's process runs.
func (cs *Consul) Running() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.d != nil && !cs.d.exited()
}

// Stop stops the agent with SIGTERM (SIGKILL after 15s) and waits. An
// agent that is not running is no error.
func (cs *Consul) Stop() error {
	return cs.signal(syscall.SIGTERM, consulStopGrace)
}

// Kill kills the agent with SIGKILL, as a crash would, and waits.
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
		return fmt.Errorf("stop consul %s: %w", cs.Name, err)
	}
	os.Remove(cs.pidfile())
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

// ConsulKV returns the keys under prefix of the Consul at addr with their
// values (GET /v1/kv/<prefix>?recurse).
func ConsulKV(addr, prefix string) (map[string][]byte, error) {
	body, code, err := httpGet("http://"+addr+"/v1/kv/"+strings.TrimPrefix(prefix, "/")+"?recurse", 5*time.Second)
	if err != nil {
		return nil, err
	}
	switch code {
	case http.StatusNotFound:
		return map[string][]byte{}, nil
	case http.StatusOK:
	default:
		return nil, fmt.Errorf("read consul keys under %q: %d %s", prefix, code, body)
	}
	var pairs []struct {
		Key   string
		Value []byte // base64 in JSON
	}
	if err := json.Unmarshal(body, &pairs); err != nil {
		return nil, fmt.Errorf("read consul keys under %q: %w", prefix, err)
	}
	out := make(map[string][]byte, len(pairs))
	for _, p := range pairs {
		out[p.Key] = p.Value
	}
	return out, nil
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

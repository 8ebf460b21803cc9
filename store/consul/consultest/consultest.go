// Package consultest starts a real Consul for the tests of packages that
// use the Consul store (store/consul, ipam): a dev agent from the binary
// hack/consul.sh caches, on free loopback ports, killed when the test ends.
// Without that binary a test is skipped, or fails when $CI is "true": a
// skipped store test in CI would hide a broken backend.
package consultest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/internal/testenv"
)

// consulScript builds and caches the Consul binary the tests run: the
// module's hack/consul.sh, found from this source file's place.
func consulScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("consultest: no source path to find hack/consul.sh from")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "hack", "consul.sh"), nil
}

// Addr returns the HTTP address of a Consul server for the test:
// $VXNET_TEST_CONSUL if set, else a dev agent started from the binary cached
// by hack/consul.sh on free loopback ports and killed when the test ends.
func Addr(t *testing.T) string {
	t.Helper()
	if addr := os.Getenv("VXNET_TEST_CONSUL"); addr != "" {
		return addr
	}
	bin, err := cachedConsul()
	if err != nil {
		testenv.Missing(t, "no Consul for the store test (run hack/consul.sh to build it, or set VXNET_TEST_CONSUL=host:port): %v", err)
	}
	return Start(t, bin)
}

// Binary is the cached Consul binary, for tests that need an agent of
// their own; like Addr, it skips without one, or fails in CI.
func Binary(t *testing.T) string {
	t.Helper()
	bin, err := cachedConsul()
	if err == nil {
		return bin
	}
	testenv.Missing(t, "no Consul binary (run hack/consul.sh to build it): %v", err)
	return ""
}

// cachedConsul is the path hack/consul.sh prints, without building: its
// version and cache defaults are read from the script, so they live in
// one place.
func cachedConsul() (string, error) {
	path, err := consulScript()
	if err != nil {
		return "", err
	}
	script, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	version := os.Getenv("CONSUL_VERSION")
	if version == "" {
		m := regexp.MustCompile(`version=\$\{CONSUL_VERSION:-([^}]+)\}`).FindSubmatch(script)
		if m == nil {
			return "", fmt.Errorf("no CONSUL_VERSION default in %q", path)
		}
		version = string(m[1])
	}
	cache := os.Getenv("VXNET_CACHE")
	if cache == "" {
		m := regexp.MustCompile(`cache=\$\{VXNET_CACHE:-\$HOME/([^}]+)\}`).FindSubmatch(script)
		if m == nil {
			return "", fmt.Errorf("no VXNET_CACHE default in %q", path)
		}
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, string(m[1]))
	}
	bin := filepath.Join(cache, "consul-"+version)
	fi, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	if fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%q is not executable", bin)
	}
	return bin, nil
}

// Start runs a dev agent, with extra agent arguments, and waits until it
// has elected itself; it returns its HTTP address.
func Start(t *testing.T, bin string, extra ...string) string {
	t.Helper()
	ports := FreePorts(t, 3)
	addr := net.JoinHostPort("127.0.0.1", ports[0])
	var name [4]byte
	if _, err := rand.Read(name[:]); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", ports[0], "-serf-lan-port", ports[1], "-server-port", ports[2],
		"-serf-wan-port", "-1", "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-node", "vxnet-test-"+hex.EncodeToString(name[:]), "-log-level", "warn")
	cmd.Args = append(cmd.Args, extra...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill consul (pid %d): %v", cmd.Process.Pid, err)
		}
		<-exited
		if t.Failed() {
			t.Logf("consul output:\n%s", out)
		}
	})

	cfg := api.DefaultConfig()
	cfg.Address, cfg.Scheme, cfg.Token = addr, "http", ""
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		leader, err := client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
		cancel()
		if err == nil && leader != "" {
			return addr
		}
		select {
		case werr := <-exited:
			exited <- werr
			t.Fatalf("consul exited before electing a leader: %v\n%s", werr, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("consul at %s has no leader after 30s (last error: %v)", addr, err)
		}
	}
}

// FreePorts returns n distinct loopback TCP ports that were free just now.
func FreePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		}()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// syncBuffer collects a process's output from its copying goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

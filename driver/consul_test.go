package driver

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul"
)

// consulStores returns n clients of one Consul on a fresh key prefix:
// $VXNET_TEST_CONSUL if set, else a dev agent of the binary hack/consul.sh
// builds and caches (make deps runs it), killed when the test ends. No
// Consul is a failure: the races these tests look for are Consul's too.
func consulStores(t *testing.T, n int) []store.Store {
	t.Helper()
	addr := os.Getenv("VXNET_TEST_CONSUL")
	if addr == "" {
		addr = startConsulAgent(t)
	}
	prefix := "vxnet-driver-test-" + newNonce()
	var out []store.Store
	for range n {
		s, err := consul.Open(context.Background(), "consul://"+addr+"/"+prefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

func startConsulAgent(t *testing.T) string {
	t.Helper()
	bin, err := exec.Command("../hack/consul.sh").Output()
	if err != nil {
		t.Fatalf("no Consul binary (hack/consul.sh): %v", err)
	}
	var ports []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
		defer l.Close()
	}
	cmd := exec.Command(strings.TrimSpace(string(bin)), "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", ports[0], "-serf-lan-port", ports[1], "-server-port", ports[2], "-serf-wan-port", "-1",
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-node", "vxnet-driver-"+newNonce(), "-log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return runAgent(t, cmd, "127.0.0.1:"+ports[0])
}

// runAgent starts cmd, kills it at cleanup, and waits until its KV store
// takes writes.
func runAgent(t *testing.T, cmd *exec.Cmd, addr string) string {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start consul: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s, err := consul.Open(context.Background(), "consul://"+addr+"/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := s.Put(ctx, "probe", []byte("1"))
		if err == nil {
			err = s.Delete(ctx, "probe")
		}
		cancel()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("consul at %s takes no writes after 30s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

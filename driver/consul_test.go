package driver

import (
	"bytes"
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
	prefix := "vxnet-driver-test-" + store.Nonce()
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
	ports := loopbackPorts(t, 3)
	cmd := exec.Command(strings.TrimSpace(string(bin)), "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", ports[0], "-serf-lan-port", ports[1], "-server-port", ports[2], "-serf-wan-port", "-1",
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-node", "vxnet-driver-"+store.Nonce(), "-log-level", "error")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start consul: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := "127.0.0.1:" + ports[0]
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := probeKV(addr)
		if err == nil {
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("consul exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("consul at %s takes no writes after 30s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// loopbackPorts returns n distinct loopback TCP ports free just now.
func loopbackPorts(t *testing.T, n int) []string {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held until all are chosen, so they differ
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// probeKV writes and deletes a key on the Consul at addr.
func probeKV(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := consul.Open(ctx, "consul://"+addr+"/ready")
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Put(ctx, "probe", []byte("1")); err != nil {
		return err
	}
	return s.Delete(ctx, "probe")
}

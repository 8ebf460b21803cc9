package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vxnet/vxnet/e2e/harness"
)

// dockerAtOnce runs one docker command per host, all at once, and returns
// each host's output and error.
func dockerAtOnce(cmds map[*harness.Host][]string) (map[*harness.Host]string, map[*harness.Host]error) {
	outs, errs := map[*harness.Host]string{}, map[*harness.Host]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for h, args := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out, err := h.Docker(args...)
			mu.Lock()
			outs[h], errs[h] = out, err
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return outs, errs
}

// testCreateRaces: `docker network create` at once on two hosts. The same
// network (subnet and -o vxnet.vni) succeeds on both as one cluster
// network whose containers reach each other; two networks asking for one
// VNI give exactly one network and, for the other, an error naming the
// VNI and its holder.
func testCreateRaces(t *testing.T, e *multiHost) {
	h1, h2 := e.host(1), e.host(2)
	create := func(subnet, vni, name string) []string {
		return []string{"network", "create", "-d", e.driver, "--ipam-driver", e.driver, "--subnet", subnet, "-o", "vxnet.vni=" + vni, name}
	}
	removeOnEnd := func(names ...string) {
		t.Cleanup(func() {
			for _, h := range []*harness.Host{h1, h2} {
				for _, n := range names {
					if err := removeNetwork(h, n); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}

	removeOnEnd("race")
	outs, errs := dockerAtOnce(map[*harness.Host][]string{
		h1: create("198.19.7.0/24", "7007", "race"),
		h2: create("198.19.7.0/24", "7007", "race"),
	})
	for _, h := range []*harness.Host{h1, h2} {
		if errs[h] != nil {
			t.Fatalf("%s: the same network created on two hosts at once failed: %v: %s", h.Name, errs[h], outs[h])
		}
	}
	runC(t, h1, "race1", append([]string{"--network", "race"}, sleeper...)...)
	runC(t, h2, "race2", append([]string{"--network", "race"}, sleeper...)...)
	mustPing(t, h1, "race1", ip(t, h2, "race2", "race"))
	mustPing(t, h2, "race2", ip(t, h1, "race1", "race"))

	removeOnEnd("racea", "raceb")
	outs, errs = dockerAtOnce(map[*harness.Host][]string{
		h1: create("198.19.8.0/24", "7008", "racea"),
		h2: create("198.19.9.0/24", "7008", "raceb"),
	})
	if (errs[h1] == nil) == (errs[h2] == nil) {
		t.Fatalf("two networks asking VNI 7008 at once: want exactly one to fail, got %s: %v, %s: %v", h1.Name, errs[h1], h2.Name, errs[h2])
	}
	loser := h1
	if errs[h1] == nil {
		loser = h2
	}
	if !strings.Contains(outs[loser], "VNI 7008 is already used by vxnet network 198.19.") {
		t.Fatalf("%s: error does not name the VNI and its holder: %s", loser.Name, outs[loser])
	}
	t.Logf("two networks asking VNI 7008 at once: %s refused with: %s", loser.Name, outs[loser])
}

// testDuplicateMAC: a container asking for a MAC another container on the
// network (on another host) has is refused with an error naming the MAC
// and the endpoint holding it; the first one keeps its traffic.
func testDuplicateMAC(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	const mac = "02:00:c6:13:02:fe"
	t.Cleanup(func() {
		_, _ = h1.Docker("rm", "-f", "mac1")
		_, _ = h2.Docker("rm", "-f", "mac2")
	})
	if err := runWithMAC(h1, "mac1", prodNet, mac, "198.19.2.241"); err != nil {
		t.Fatal(err)
	}
	if _, got := endpoint(t, h1, "mac1", prodNet); got != mac {
		t.Fatalf("mac1 has MAC %q on %s, want %s", got, prodNet, mac)
	}
	err := runWithMAC(h2, "mac2", prodNet, mac, "198.19.2.242")
	if err == nil {
		t.Fatalf("%s: a second container with MAC %s on %s started", h2.Name, mac, prodNet)
	}
	if !strings.Contains(err.Error(), "MAC address "+mac+" is already used by endpoint") {
		t.Fatalf("%s: error does not name the MAC and its holder: %v", h2.Name, err)
	}
	t.Logf("second container with MAC %s refused with: %v", mac, err)
	mustPing(t, h3, pinger(h3), ip(t, h1, "mac1", prodNet))
}

// runWithMAC creates and starts a container with a MAC on a network
// through Docker's API 1.41: the CLI of Docker 25 and later refuses
// --mac-address with --network against a 20.10 daemon ("specify
// mac-address per network" requires API 1.44).
func runWithMAC(h *harness.Host, name, network, mac, ip string) error {
	sock := strings.TrimPrefix(h.Socket(), "unix://")
	// A fixed address no other case uses: the pinging containers' ARP
	// caches hold the MAC Docker derived for an address another case's
	// container had, and a custom MAC on that address would be unreachable
	// until those entries age out (the test's own subject is the MAC).
	body, err := json.Marshal(map[string]any{
		"Image": harness.Image, "Cmd": []string{"sleep", "1d"}, "MacAddress": mac,
		"HostConfig": map[string]any{"NetworkMode": network},
		"NetworkingConfig": map[string]any{"EndpointsConfig": map[string]any{
			network: map[string]any{"IPAMConfig": map[string]any{"IPv4Address": ip}}}},
	})
	if err != nil {
		return err
	}
	for _, call := range []struct{ path, body string }{
		{"/v1.41/containers/create?name=" + name, string(body)},
		{"/v1.41/containers/" + name + "/start", ""},
	} {
		code, out, err := postUnix(sock, call.path, "application/json", call.body)
		if err != nil {
			return fmt.Errorf("%s: POST %s: %w", h.Name, call.path, err)
		}
		if code >= 300 {
			return fmt.Errorf("%s: POST %s: %d %s", h.Name, call.path, code, out)
		}
	}
	return nil
}

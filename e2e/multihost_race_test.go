package e2e

import (
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
}

// testDuplicateMAC: a container asking for a MAC another container on the
// network (on another host) has is refused with an error naming the MAC
// and the endpoint holding it; the first one keeps its traffic.
func testDuplicateMAC(t *testing.T, e *multiHost) {
	h1, h2, h3 := e.host(1), e.host(2), e.host(3)
	const mac = "02:00:c6:13:02:fe"
	runC(t, h1, "mac1", append([]string{"--network", prodNet, "--mac-address", mac}, sleeper...)...)
	t.Cleanup(func() { _, _ = h2.Docker("rm", "-f", "mac2") })
	out, err := h2.Docker(append([]string{"run", "-d", "--name", "mac2", "--network", prodNet, "--mac-address", mac}, sleeper...)...)
	if err == nil {
		t.Fatalf("%s: a second container with MAC %s on %s started", h2.Name, mac, prodNet)
	}
	if !strings.Contains(out, "MAC address "+mac+" is already used by endpoint") {
		t.Fatalf("%s: error does not name the MAC and its holder: %s", h2.Name, out)
	}
	mustPing(t, h3, pinger(h3), ip(t, h1, "mac1", prodNet))
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

// composeFile is a compose file as users write it on standalone hosts: the
// network is defined in the file (driver and IPAM driver vxnet, a
// subnet). The same file on every host makes one network (vxnet
// recognises it by its subnet); ${VXN}, the host's number, names each
// host's web apart, so the names across hosts are unambiguous.
const composeFile = `version: "3.8"
services:
  web:
    image: ` + harness.Image + `
    container_name: web${VXN}
    command: ["nc", "-ll", "-p", "8080", "-e", "echo", "hi from web${VXN}"]
    networks: [prod]
networks:
  prod:
    driver: vxnet
    ipam:
      driver: vxnet
      config:
        - subnet: ` + composeSubnet + `
`

const (
	composeProject = "app"
	composeNet     = composeProject + "_prod" // docker-compose 1.29's network name
	composeSubnet  = "198.19.6.0/24"
)

// composeWeb is the container compose runs on h.
func composeWeb(h *harness.Host) string { return fmt.Sprintf("web%d", h.Index) }

// TestCompose runs docker-compose (Debian's 1.29, hack/deps.sh) with
// composeFile on two standalone hosts sharing one Consul, with cross-host
// names on as TestNames sets them up: each host's web answers the other
// host's by address and by container name, over the one vxnet network both
// compose projects made; `docker-compose down` on both leaves nothing in
// the kernel or in Consul.
func TestCompose(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose is not installed (make deps installs it): %v", err)
	}
	c := harness.StartWith(t, harness.Options{Hosts: 2, DockerdArgs: []string{"--dns", namesDNS, "--dns", harness.Gateway}})
	began := time.Now()
	t.Logf("%s", composeOut(t, bin, "version", "--short"))
	upstreamDNS(t)
	e, lc := startSocketPlugins(t, c, "--dns-addr", namesDNS, "--dns-upstream", harness.Gateway)
	file := filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(file, []byte(composeFile), 0o644); err != nil {
		t.Fatal(err)
	}
	up := map[*harness.Host]bool{}
	t.Cleanup(func() {
		for h := range up {
			_, _ = compose(bin, h, file, "down")
		}
	})
	for _, h := range c.Hosts {
		up[h] = true
		if out, err := compose(bin, h, file, "up", "-d", "--no-build"); err != nil {
			t.Fatalf("%s: docker-compose up: %v\n%s", h.Name, err, out)
		}
	}
	addr := map[*harness.Host]string{}
	for _, h := range c.Hosts {
		addr[h] = ip(t, h, composeWeb(h), composeNet)
	}
	if addr[c.Hosts[0]] == addr[c.Hosts[1]] {
		t.Fatalf("both hosts' web have address %s", addr[c.Hosts[0]])
	}
	for i, h := range c.Hosts {
		to := c.Hosts[1-i]
		want := "hi from " + composeWeb(to)
		for _, target := range []string{addr[to], composeWeb(to)} {
			var out string
			if _, err := poll(namesBound, 300*time.Millisecond, func() (bool, error) {
				var err error
				out, err = h.Docker("exec", composeWeb(h), "nc", "-w", "3", target, "8080")
				return err == nil && out == want, fmt.Errorf("got %q (%v)", out, err)
			}); err != nil {
				e.logPluginTails(t)
				t.Fatalf("%s: %s asking %s:8080 (on %s): %v, want %q", h.Name, composeWeb(h), target, to.Name, err, want)
			}
			t.Logf("%s: docker exec %s nc -w 3 %s 8080 -> %s", h.Name, composeWeb(h), target, out)
		}
	}
	for _, h := range c.Hosts {
		if out, err := compose(bin, h, file, "down"); err != nil {
			t.Fatalf("%s: docker-compose down: %v\n%s", h.Name, err, out)
		}
		delete(up, h)
	}
	if _, err := lc.Wait(20 * time.Second); err != nil {
		t.Error(err)
	}
	dropResolverLinks(t, c)
	e.c.LeakCheck(t)
	stopPlugins(t, e.plugins)
	if keys := e.plugins[0].storeKeys(t); len(keys) != 0 {
		t.Errorf("consul keys left under %s/ after docker-compose down on every host:\n%s", e.prefix, strings.Join(keys, "\n"))
	}
	t.Logf("TestCompose, from the hosts up to the end of the leak check: %s", time.Since(began).Round(time.Millisecond))
}

// compose runs docker-compose with file as project composeProject against
// h's dockerd.
func compose(bin string, h *harness.Host, file string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-p", composeProject, "-f", file}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+h.Socket(), fmt.Sprintf("VXN=%d", h.Index))
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// composeOut runs docker-compose without a host, e.g. for its version.
func composeOut(t *testing.T, bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
	return "docker-compose " + strings.TrimSpace(string(out))
}

package e2e

import (
	"context"
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
// recognises it by its subnet); ${VXHOST} tells the hosts' answers apart.
const composeFile = `version: "3.8"
services:
  web:
    image: ` + harness.Image + `
    command: ["nc", "-ll", "-p", "8080", "-e", "echo", "hi from ${VXHOST}"]
    networks: [prod]
networks:
  prod:
    driver: vxnet
    ipam:
      driver: vxnet
      config:
        - subnet: 198.19.6.0/24
`

const (
	composeProject = "app"
	composeNet     = composeProject + "_prod"
	composeWeb     = composeProject + "_web_1" // docker-compose 1.29's container name
)

// TestCompose runs docker-compose (Debian's 1.29, hack/deps.sh) with
// composeFile on two standalone hosts sharing one Consul: each host's web
// answers the other host's by address, over the one vxnet network both
// compose projects made; `docker-compose down` on both leaves nothing in
// the kernel or in Consul.
func TestCompose(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatalf("docker-compose is not installed (make deps installs it): %v", err)
	}
	c := harness.Start(t, 2)
	e, lc := startSocketPlugins(t, c)
	file := filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(file, []byte(composeFile), 0o644); err != nil {
		t.Fatal(err)
	}
	up := map[*harness.Host]bool{}
	t.Cleanup(func() {
		for h := range up {
			compose(h, file, "down")
		}
	})
	for _, h := range c.Hosts {
		if out, err := compose(h, file, "up", "-d", "--no-build"); err != nil {
			t.Fatalf("%s: docker-compose up: %v\n%s", h.Name, err, out)
		}
		up[h] = true
	}
	addr := map[*harness.Host]string{}
	for _, h := range c.Hosts {
		addr[h] = ip(t, h, composeWeb, composeNet)
	}
	if addr[c.Hosts[0]] == addr[c.Hosts[1]] {
		t.Fatalf("both hosts' web have address %s", addr[c.Hosts[0]])
	}
	for i, h := range c.Hosts {
		to := c.Hosts[1-i]
		out, err := h.Docker("exec", composeWeb, "nc", "-w", "3", addr[to], "8080")
		if want := "hi from " + to.Name; err != nil || out != want {
			t.Fatalf("%s: web asking %s's web at %s:8080 got %q (%v), want %q", h.Name, to.Name, addr[to], out, err, want)
		}
		t.Logf("%s -> %s:8080 (%s): %s", h.Name, addr[to], to.Name, out)
	}
	for _, h := range c.Hosts {
		if out, err := compose(h, file, "down"); err != nil {
			t.Fatalf("%s: docker-compose down: %v\n%s", h.Name, err, out)
		}
		delete(up, h)
	}
	if _, err := lc.Wait(20 * time.Second); err != nil {
		t.Error(err)
	}
	e.c.LeakCheck(t)
	stopPlugins(t, e.plugins)
	if keys := e.plugins[0].storeKeys(t); len(keys) != 0 {
		t.Errorf("consul keys left under %s/ after docker-compose down on every host:\n%s", e.prefix, strings.Join(keys, "\n"))
	}
}

// compose runs docker-compose with file as project composeProject against
// h's dockerd.
func compose(h *harness.Host, file string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-p", composeProject, "-f", file}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+h.Socket(), "VXHOST="+h.Name)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

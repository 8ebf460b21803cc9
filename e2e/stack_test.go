package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

const (
	stackName   = "vxs"
	stackNet    = stackName + "_app"
	stackSubnet = "198.19.5.0/24"
)

// stackFile is a compose v3 file as users write it for vxnet: the network
// is defined in the file (driver and IPAM driver vxnet:latest, a subnet),
// services that talk to each other use endpoint_mode dnsrr, and "vip"
// forgot it. web runs on the manager, api on the two workers, so every
// request crosses nodes.
var stackFile = `version: "3.8"
services:
  web:
    image: ` + harness.Image + `
    command: ["nc", "-ll", "-p", "8080", "-e", "echo", "hi from web"]
    networks: [app]
    deploy:
      endpoint_mode: dnsrr
      placement:
        constraints: [node.role == manager]
  api:
    image: ` + harness.Image + `
    command: ["nc", "-ll", "-p", "8080", "-e", "echo", "hi from api"]
    networks: [app]
    deploy:
      endpoint_mode: dnsrr
      replicas: 2
      placement:
        max_replicas_per_node: 1
        constraints: [node.role == worker]
  vip:
    image: ` + harness.Image + `
    command: ["sleep", "1d"]
    networks: [app]
    deploy:
      placement:
        constraints: [node.role == worker]
networks:
  app:
    driver: ` + managedName + `
    ipam:
      driver: ` + managedName + `
      config:
        - subnet: ` + stackSubnet + `
`

// TestSwarmStack deploys stackFile with `docker stack deploy` on a default
// swarm (ingress network present) of three nodes: the dnsrr services reach
// each other by service name across nodes (nc request and answer both
// ways); every task of the VIP-mode service fails with an error naming
// --endpoint-mode dnsrr in `docker service ps --no-trunc`, and none runs;
// `docker stack rm` leaves nothing on any node or in Consul.
func TestSwarmStack(t *testing.T) {
	sw := startSwarm(t)
	base := sw.links(t)
	mgr := sw.mgr
	// startSwarm keeps no task history (--task-history-limit 0): a refused
	// task is then reaped as soon as swarm replaces it, and `docker service
	// ps` shows its error only in that short window (CI once polled a
	// minute of refusals, one every 5 s, and never saw one). Keep the
	// failed tasks, so the refusal stays listed.
	mgr.MustDocker(t, "swarm", "update", "--task-history-limit", "5")
	file := filepath.Join(t.TempDir(), "stack.yml")
	if err := os.WriteFile(file, []byte(stackFile), 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	mgr.MustDocker(t, "stack", "deploy", "--resolve-image", "never", "-c", file, stackName)
	removed := false
	t.Cleanup(func() {
		if !removed {
			mgr.Docker("stack", "rm", stackName)
		}
	})
	web := serviceTasks(t, sw.c, stackName+"_web", 1)
	api := serviceTasks(t, sw.c, stackName+"_api", 2)
	t.Logf("stack deployed, web and api tasks running after %s", time.Since(began).Round(time.Millisecond))
	if len(web[mgr]) != 1 || len(api[mgr]) != 0 {
		t.Fatalf("placement: web %v, api %v; want web on the manager %s alone", web, api, mgr.Name)
	}
	for h, ids := range api {
		for _, id := range ids {
			stackRequest(t, h, id, "web", "hi from web")
		}
	}
	stackRequest(t, mgr, web[mgr][0], "api", "hi from api")

	var refusal string
	swarmWait(t, "refusal of the vip service's tasks", 60*time.Second, func() (bool, string) {
		out, err := mgr.Docker("service", "ps", "--no-trunc", "--format", "{{.CurrentState}}: {{.Error}}", stackName+"_vip")
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "--endpoint-mode dnsrr") {
				refusal = line
				return true, out
			}
		}
		return false, out
	})
	t.Logf("%s after the deploy, docker service ps --no-trunc %s_vip: %s", time.Since(began).Round(time.Millisecond), stackName, refusal)
	for _, s := range []string{`service "` + stackName + `_vip"`, "endpoint mode vip", `network "` + stackNet + `"`} {
		if !strings.Contains(refusal, s) {
			t.Errorf("refusal does not name %s: %s", s, refusal)
		}
	}
	for _, h := range sw.c.Hosts {
		if out := h.MustDocker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+stackName+"_vip"); out != "" {
			t.Errorf("%s: a task of the vip service runs: %s", h.Name, out)
		}
	}
	if keys := swarmKeys(t, sw.consul, sw.prefix+"/swarm/services/"); len(keys) != 3 {
		t.Errorf("%d service records for the stack's 3 services: %v", len(keys), keys)
	}

	began = time.Now()
	stackRemove(t, mgr, stackName)
	removed = true
	sw.checkGone(t, stackNet, base)
	swarmWait(t, "service records removed", 15*time.Second, func() (bool, string) {
		keys := swarmKeys(t, sw.consul, sw.prefix+"/swarm/services/")
		return len(keys) == 0, fmt.Sprint(keys)
	})
	t.Logf("stack removed, nothing left on the nodes after %s", time.Since(began).Round(time.Millisecond))
	sw.checkStoreEmpty(t)
}

// stackRemove runs `docker stack rm name` on h until it succeeds (at most
// 5 times, 2 s apart). The CLI removes the services and at once the
// stack's networks, and swarm refuses a network while a task of a removed
// service still holds it: "network … is in use by task …" (CI, 07:56 UTC
// 2026-12-01, Docker 20.10's swarmkit), which makes `stack rm` exit 1
// though nothing is wrong; the next run removes what is left, as a user
// would run it again.
func stackRemove(t *testing.T, h *harness.Host, name string) {
	t.Helper()
	var err error
	for try := 1; try <= 5; try++ {
		var out string
		if out, err = h.Docker("stack", "rm", name); err == nil {
			return
		}
		t.Logf("%s: docker stack rm %s, try %d: %v (%s)", h.Name, name, try, err, out)
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("%s: docker stack rm %s: %v", h.Name, name, err)
}

// stackRequest asks service's port 8080 by name from task id on h and
// wants the answer.
func stackRequest(t *testing.T, h *harness.Host, id, service, answer string) {
	t.Helper()
	out, err := h.Docker("exec", id, "nc", "-w", "3", service, "8080")
	if err != nil || !strings.Contains(out, answer) {
		t.Fatalf("%s: task %.12s asking %s:8080 got %q (%v), want %q", h.Name, id, service, out, err, answer)
	}
	t.Logf("%s: task %.12s -> %s:8080: %s", h.Name, id, service, out)
}

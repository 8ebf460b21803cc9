package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHarnessSmoke builds two hosts, checks Docker, egress NAT, the
// underlay, per-host plugin dirs, processes and a dockerd restart, then
// checks that teardown leaves nothing named vxe2e-*.
func TestHarnessSmoke(t *testing.T) {
	Require(t)
	t.Run("cluster", func(t *testing.T) {
		c := Start(t, 2)
		h1, h2 := c.Hosts[0], c.Hosts[1]
		for _, h := range c.Hosts {
			h.MustDocker(t, "run", "--rm", Image, "true")
		}

		out := h1.MustDocker(t, "run", "--rm", Image, "ping", "-c1", "-W2", Gateway)
		if !strings.Contains(out, "1 packets received") {
			t.Errorf("container on %s pinging %s through NAT:\n%s", h1.Name, Gateway, out)
		}
		h1.MustExec(t, "busybox", "ping", "-c1", "-W2", h2.IP)

		// /run/docker/plugins is private to each host.
		h1.MustExec(t, "sh", "-c", "echo probe > /run/docker/plugins/probe.sock")
		if out, err := h2.Exec("ls", "/run/docker/plugins"); err != nil || out != "" {
			t.Errorf("%s sees plugin dir entries %q (err %v), want none", h2.Name, out, err)
		}
		if _, err := os.Stat("/run/docker/plugins/probe.sock"); err == nil {
			t.Errorf("the root mount namespace sees %s's plugin dir", h1.Name)
		}

		p := h1.Start(t, "sleeper", "sleep", "300")
		if got, want := netnsOf(t, p.Pid()), netnsOf(t, h1.DockerdPid()); got != want {
			t.Errorf("process started on %s is in %s, dockerd in %s", h1.Name, got, want)
		}
		if err := p.Stop(); err != nil {
			t.Error(err)
		}

		// A crashed dockerd comes back in the same mount namespace.
		if err := h1.KillDockerd(); err != nil {
			t.Fatal(err)
		}
		if err := h1.StartDockerd(); err != nil {
			t.Fatal(err)
		}
		h1.MustExec(t, "test", "-e", "/run/docker/plugins/probe.sock")
		h1.MustDocker(t, "run", "--rm", Image, "true")

		c.LeakCheck(t)
		if err := c.Close(); err != nil {
			t.Fatalf("teardown: %v", err)
		}
	})
	unlock := lockForTest(t)
	defer unlock()
	assertNothingLeft(t)
}

const (
	helperEnv       = "VXE2E_KILLED_RUN_HELPER"
	helperConsulEnv = "VXE2E_KILLED_RUN_CONSUL"
)

// killedRun is the run TestCleanupAfterKill kills, in a subprocess of the
// test binary running TestCleanupAfterKill with helperEnv set: one host
// with a container and a process (and the Consul node, when there is a
// Consul binary), then it waits to be killed.
func killedRun(t *testing.T) {
	c := Start(t, 1)
	if os.Getenv(helperConsulEnv) == "1" {
		c.StartConsul(t)
	}
	h := c.Hosts[0]
	id := h.MustDocker(t, "run", "-d", Image, "sleep", "600")
	cpid := h.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", id)
	p := h.Start(t, "sleeper", "sleep", "600")
	fmt.Printf("VXE2E-READY %s %d %s %d\n", c.LogDir, h.DockerdPid(), cpid, p.Pid())
	select {}
}

// TestCleanupAfterKill SIGKILLs a test process with a cluster up, so no
// teardown runs, and checks that Cleanup removes what it left.
func TestCleanupAfterKill(t *testing.T) {
	if os.Getenv(helperEnv) == "1" {
		killedRun(t) // the subprocess: never returns, it is killed
	}
	Require(t)
	env := []string{helperEnv + "=1"}
	if _, err := ConsulBinary(); err == nil {
		env = append(env, helperConsulEnv+"=1")
	} else {
		t.Logf("no Consul binary, the killed run has no Consul node: %v", err)
	}
	line := RunKilled(t, t.Name(), env, 2*time.Minute, func(line string) bool {
		f := strings.Fields(line)
		return len(f) == 5 && f[0] == "VXE2E-READY"
	})
	ready := strings.Fields(line)[1:]
	defer os.RemoveAll(ready[0])

	unlock := lockForTest(t)
	defer unlock()
	left, err := Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) == 0 {
		t.Fatal("the killed run left nothing behind: the simulation is broken")
	}
	t.Logf("left by the killed run: %s", strings.Join(left, "; "))
	if err := Cleanup(); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	assertNothingLeft(t)
	for i, what := range []string{"dockerd", "container", "started process"} {
		pid, _ := strconv.Atoi(ready[i+1])
		if st, err := readStat(pid); err == nil && st.state != 'Z' {
			t.Errorf("%s (pid %d) still running after Cleanup", what, pid)
		}
	}
	if err := Cleanup(); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

// lockForTest takes the machine-wide lock, so no other cluster comes up
// while the test looks for leftovers.
func lockForTest(t *testing.T) func() {
	t.Helper()
	f, err := acquireLock(t, lockPath, lockWait)
	if err != nil {
		t.Fatal(err)
	}
	return func() { releaseLock(f) }
}

// assertNothingLeft checks for vxe2e with the operator's tools rather than
// with the harness's own scan.
func assertNothingLeft(t *testing.T) {
	t.Helper()
	for _, cmd := range [][]string{{"ip", "netns", "list"}, {"ip", "-o", "link", "show"}, {"ps", "-eo", "pid,args"}} {
		out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", cmd, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "vxe2e") {
				t.Errorf("left after teardown (%s): %s", strings.Join(cmd, " "), line)
			}
		}
	}
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, "vxe2e") {
			t.Errorf("mount left after teardown: %s", line)
		}
	}
	for _, dir := range []string{"/run", "/var/lib"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "vxe2e") {
				t.Errorf("left after teardown: %s/%s", dir, e.Name())
			}
		}
	}
}

func netnsOf(t *testing.T, pid int) string {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err == nil && ns == fmt.Sprintf("net:[%d]", st.Ino) {
		t.Errorf("pid %d is in the test's own network namespace", pid)
	}
	return ns
}

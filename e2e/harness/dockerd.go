package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	dockerdReadyWait = 60 * time.Second
	dockerdStopGrace = 15 * time.Second
)

// daemon is one run of a host's dockerd.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, set before done closes
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// DockerdLog is the file dockerd's output goes to (appended across restarts).
func (h *Host) DockerdLog() string {
	return filepath.Join(h.logDir, h.Name+"-dockerd.log")
}

// DockerdPid is the pid of the running dockerd, or 0.
func (h *Host) DockerdPid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dockerd == nil || h.dockerd.exited() {
		return 0
	}
	return h.dockerd.cmd.Process.Pid
}

func (h *Host) dockerdArgs() []string {
	rd := h.RunDir()
	args := []string{
		"--data-root", h.DataRoot(),
		"--exec-root", filepath.Join(rd, "exec"),
		"-H", h.Socket(),
		"--pidfile", filepath.Join(rd, "docker.pid"),
		"--userland-proxy-path", h.bin.proxy,
		"--default-address-pool", dockerPool,
		"--config-file", filepath.Join(rd, "daemon.json"),
		"--storage-driver", h.opts.StorageDriver,
		"--log-level", h.opts.DockerdLogLevel,
	}
	return append(args, h.opts.DockerdArgs...)
}

// StartDockerd starts the host's dockerd and waits until it answers. The
// first start creates the private mount namespace with a tmpfs on
// /run/docker/plugins and pins it; a later start (after StopDockerd or
// KillDockerd) enters the pinned namespace, so plugins keep their sockets.
func (h *Host) StartDockerd() error {
	if h.DockerdPid() != 0 {
		return fmt.Errorf("start dockerd of %q: already running", h.Name)
	}
	for _, dir := range []string{h.RunDir(), h.DataRoot()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("start dockerd of %q: %w", h.Name, err)
		}
	}
	// Neither /etc/docker/daemon.json nor /etc/docker/key.json: the hosts
	// share no configuration and no engine identity. The key path is a
	// hidden option of 20.10 that only the config file takes.
	conf := fmt.Sprintf("{\"deprecated-key-path\": %q}\n", filepath.Join(h.RunDir(), "key.json"))
	if err := os.WriteFile(filepath.Join(h.RunDir(), "daemon.json"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("start dockerd of %q: %w", h.Name, err)
	}
	if err := h.reapOldContainerd(); err != nil {
		return fmt.Errorf("start dockerd of %q: %w", h.Name, err)
	}
	pinned := h.mountNSPinned()
	argv := h.dockerdCommand(pinned)
	// Swarm tasks run the image Start imported: without this, each node
	// first tries to pull it from Docker Hub (a DNS query to the machine's
	// resolver, outside the test's addresses) and waits out the timeout.
	d, err := startLogged(h.DockerdLog(), "nsenter", argv, cmdEnv("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1"))
	if err != nil {
		return fmt.Errorf("start dockerd of %q: %w", h.Name, err)
	}
	h.mu.Lock()
	h.dockerd = d
	h.mu.Unlock()
	if err := h.waitDockerd(d); err != nil {
		return fmt.Errorf("start dockerd of %q: %w\nlast lines of %s:\n%s", h.Name, err, h.DockerdLog(), tailFile(h.DockerdLog(), 30))
	}
	if !pinned {
		if err := h.pinMountNS(d.cmd.Process.Pid); err != nil {
			return fmt.Errorf("start dockerd of %q: %w", h.Name, err)
		}
	}
	return nil
}

// dockerdCommand is nsenter's argv for dockerd: the first start makes the
// private mount namespace, a restart enters the pinned one.
func (h *Host) dockerdCommand(pinned bool) []string {
	quoted := make([]string, 0, 20)
	for _, a := range h.dockerdArgs() {
		quoted = append(quoted, shellQuote(a))
	}
	execDockerd := "exec " + shellQuote(h.bin.path) + " " + strings.Join(quoted, " ")
	if pinned {
		return []string{"--net=" + h.NetnsPath(), "--mount=" + h.MountNSPath(), "sh", "-c", execDockerd}
	}
	return []string{"--net=" + h.NetnsPath(), "unshare", "-m", "--propagation", "private", "sh", "-c",
		"mkdir -p /run/docker/plugins && mount -t tmpfs tmpfs /run/docker/plugins && " + execDockerd}
}

// startLogged starts a command with stdout and stderr appended to logPath
// and reaps it in the background.
func startLogged(logPath, name string, args, env []string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	fmt.Fprintf(logf, "=== %s harness: %s\n", time.Now().Format(time.RFC3339Nano), commandLine(name, args))
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", commandLine(name, args), err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		fmt.Fprintf(logf, "=== %s harness: exited: %v\n", time.Now().Format(time.RFC3339Nano), d.err)
		logf.Close()
		close(d.done)
	}()
	return d, nil
}

func (h *Host) waitDockerd(d *daemon) error {
	deadline := time.Now().Add(dockerdReadyWait)
	for {
		if _, err := run(5*time.Second, nil, "docker", "-H", h.Socket(), "version"); err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("dockerd exited before answering: %v", d.err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd not answering on %s after %s", h.Socket(), dockerdReadyWait)
		}
	}
}

// reapOldContainerd makes sure the containerd of a previous dockerd is
// gone, not just dying: it dies with dockerd (SIGKILL on parent death) but
// may take a moment, and init leaves it a zombie for up to a second here. A
// new dockerd that still finds its pid waits for its socket instead of
// starting a new containerd, and gives up after 15s.
func (h *Host) reapOldContainerd() error {
	b, err := os.ReadFile(filepath.Join(h.RunDir(), "exec", "containerd", "containerd.pid"))
	if err != nil {
		return nil // first start, or dockerd removed it
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil
	}
	first, err := readStat(pid)
	if err != nil {
		return nil // gone
	}
	// Ours if it names the host's run dir; a dying process or a zombie has
	// an empty command line.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	switch {
	case strings.Contains(string(cmdline), h.RunDir()):
		syscall.Kill(pid, syscall.SIGKILL) // orphaned; ESRCH means gone
	case len(cmdline) > 0 && first.state != 'Z':
		return nil // the pid is someone else's now
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := readStat(pid)
		if err != nil || st.start != first.start {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd of the previous dockerd (pid %d) still there after 10s", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *Host) mountNSPinned() bool {
	var st syscall.Statfs_t
	const nsfsMagic = 0x6e736673
	return syscall.Statfs(h.MountNSPath(), &st) == nil && st.Type == nsfsMagic
}

// pinMountNS bind-mounts the mount namespace of pid onto MountNSPath.
func (h *Host) pinMountNS(pid int) error {
	src := fmt.Sprintf("/proc/%d/ns/mnt", pid)
	own, err1 := os.Readlink("/proc/self/ns/mnt")
	theirs, err2 := os.Readlink(src)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("pin mount namespace of pid %d: %w", pid, err)
	}
	if own == theirs {
		return fmt.Errorf("pin mount namespace of pid %d: it is the root mount namespace (%s)", pid, own)
	}
	if err := os.WriteFile(h.MountNSPath(), nil, 0o644); err != nil {
		return fmt.Errorf("pin mount namespace of pid %d: %w", pid, err)
	}
	if err := syscall.Mount(src, h.MountNSPath(), "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin mount namespace of pid %d on %q: %w", pid, h.MountNSPath(), err)
	}
	return nil
}

// StopDockerd stops dockerd with SIGTERM, then SIGKILL after 15s. A dockerd
// that is not running is no error.
func (h *Host) StopDockerd() error {
	return h.signalDockerd(syscall.SIGTERM, dockerdStopGrace)
}

// KillDockerd kills dockerd with SIGKILL, as a crash would. Containers and
// containerd's shims keep running.
func (h *Host) KillDockerd() error {
	return h.signalDockerd(syscall.SIGKILL, 0)
}

func (h *Host) signalDockerd(sig syscall.Signal, grace time.Duration) error {
	h.mu.Lock()
	d := h.dockerd
	h.mu.Unlock()
	if d == nil {
		return nil
	}
	if err := signalAndWait(d.cmd.Process, d.done, sig, grace); err != nil {
		return fmt.Errorf("stop dockerd of %q: %w", h.Name, err)
	}
	return nil
}

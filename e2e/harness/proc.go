package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const procStopGrace = 10 * time.Second

// Proc is a long-running process on a host, such as the plugin.
type Proc struct {
	Name string
	Host *Host

	d       *daemon
	logPath string
	pidPath string
}

// Start starts a long-running process in the host's network and mount
// namespaces, with DOCKER_HOST pointing at the host's dockerd. Output goes
// to <LogDir>/<host>-<name>.log (appended if the name is started again),
// the pid to <RunDir>/procs/<name>.pid so Cleanup finds it after a killed
// run. Use `env K=V cmd ...` for more environment. A relative program path
// is made absolute, since the process starts in /. Teardown stops whatever
// is still running.
func (h *Host) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	p, err := h.startProc(name, args)
	if err != nil {
		t.Fatalf("%s: start %q: %v", h.Name, name, err)
	}
	return p
}

func (h *Host) startProc(name string, args []string) (*Proc, error) {
	if len(args) == 0 {
		return nil, errors.New("no command")
	}
	if strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("name %q contains a slash", name)
	}
	args = append([]string(nil), args...)
	if strings.ContainsRune(args[0], '/') {
		abs, err := filepath.Abs(args[0])
		if err != nil {
			return nil, err
		}
		args[0] = abs
	}
	procDir := filepath.Join(h.RunDir(), "procs")
	if err := os.MkdirAll(procDir, 0o755); err != nil {
		return nil, err
	}
	p := &Proc{
		Name:    name,
		Host:    h,
		logPath: filepath.Join(h.logDir, h.Name+"-"+name+".log"),
		pidPath: filepath.Join(procDir, name+".pid"),
	}
	d, err := startLogged(p.logPath, "nsenter", h.nsenterArgs(args), cmdEnv("DOCKER_HOST="+h.Socket()))
	if err != nil {
		return nil, err
	}
	p.d = d
	err = writePidfile(p.pidPath, d.cmd.Process.Pid)
	if err == nil {
		err = h.waitEntered(d)
	}
	if err != nil {
		d.cmd.Process.Kill()
		<-d.done
		return nil, err
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p, nil
}

// waitEntered waits until nsenter has moved the process into the host's
// namespaces, so callers can rely on where it runs once Start returns.
func (h *Host) waitEntered(d *daemon) error {
	want := map[string]string{"net": h.NetnsPath(), "mnt": h.MountNSPath()}
	for kind, path := range want {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			return fmt.Errorf("stat %s namespace: %w", kind, err)
		}
		want[kind] = fmt.Sprintf("%s:[%d]", kind, st.Ino)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		net, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", d.cmd.Process.Pid))
		mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", d.cmd.Process.Pid))
		if net == want["net"] && mnt == want["mnt"] {
			return nil
		}
		if d.exited() {
			return nil // Wait tells the caller how it ended
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not in the namespaces of %q after 5s", h.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Procs lists the processes started on the host, running or not.
func (h *Host) Procs() []*Proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Proc(nil), h.procs...)
}

// stopProcs stops every process still running.
func (h *Host) stopProcs() error {
	var errs []error
	for _, p := range h.Procs() {
		errs = append(errs, p.Stop())
	}
	return errors.Join(errs...)
}

// Pid is the process id (nsenter execs the command, so it is the
// command's own).
func (p *Proc) Pid() int { return p.d.cmd.Process.Pid }

// LogPath is the file the process's output goes to.
func (p *Proc) LogPath() string { return p.logPath }

// LogTail returns the last 50 lines of the process's log.
func (p *Proc) LogTail() string { return tailFile(p.logPath, 50) }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool { return p.d.exited() }

// Stop sends SIGTERM, then SIGKILL after 10s, and waits for the end. A
// process that already ended is no error; its exit status is Wait's.
func (p *Proc) Stop() error {
	return p.signal(syscall.SIGTERM, procStopGrace)
}

// Kill9 kills the process with SIGKILL, as a crash would, and waits for it.
func (p *Proc) Kill9() error {
	return p.signal(syscall.SIGKILL, 0)
}

func (p *Proc) signal(sig syscall.Signal, grace time.Duration) error {
	if err := signalAndWait(p.d.cmd.Process, p.d.done, sig, grace); err != nil {
		return fmt.Errorf("stop %q on %q: %w", p.Name, p.Host.Name, err)
	}
	os.Remove(p.pidPath)
	return nil
}

// Wait waits up to timeout for the process to end and returns its exit
// error (nil for status 0).
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.d.done:
		return p.d.err
	case <-time.After(timeout):
		return fmt.Errorf("%q on %q still running after %s", p.Name, p.Host.Name, timeout)
	}
}

// writePidfile writes "pid starttime": Cleanup kills the pid only if its
// start time still matches, never a recycled pid.
func writePidfile(path string, pid int) error {
	st, err := readStat(pid)
	if err != nil {
		return fmt.Errorf("write pidfile %q: %w", path, err)
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d\n", pid, st.start), 0o644); err != nil {
		return fmt.Errorf("write pidfile %q: %w", path, err)
	}
	return nil
}

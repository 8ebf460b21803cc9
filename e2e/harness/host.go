package harness

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Host is one Docker host of the cluster.
type Host struct {
	Name  string // vxe2e-hN; also the name of its network namespace
	Index int    // N, from 1
	IP    string // underlay address, 198.18.0.(10+N)
	Netns string // network namespace name, as `ip netns` shows it

	logDir string
	opts   Options
	bin    dockerdBin

	mu        sync.Mutex
	dockerd   *daemon
	procs     []*Proc
	baseLinks []string
}

func newHost(i int, logDir string, o Options, bin dockerdBin) *Host {
	name := fmt.Sprintf("%sh%d", namePrefix, i)
	return &Host{
		Name:   name,
		Index:  i,
		IP:     fmt.Sprintf("198.18.0.%d", 10+i),
		Netns:  name,
		logDir: logDir,
		opts:   o,
		bin:    bin,
	}
}

// RunDir is /run/vxe2e-hN: per-host state (sockets, pidfiles, a plugin's
// netns dir and db file). It is removed at teardown.
func (h *Host) RunDir() string { return "/run/" + h.Name }

// DataRoot is dockerd's --data-root.
func (h *Host) DataRoot() string { return "/var/lib/" + h.Name + "/docker" }

// Socket is the address of this host's Docker API, for DOCKER_HOST.
func (h *Host) Socket() string { return "unix://" + filepath.Join(h.RunDir(), "docker.sock") }

// NetnsPath is the bind-mounted network namespace file, for netns.GetFromPath.
func (h *Host) NetnsPath() string { return "/run/netns/" + h.Netns }

// MountNSPath is the file pinning the host's mount namespace.
func (h *Host) MountNSPath() string { return filepath.Join(h.RunDir(), "mntns") }

// Docker runs the docker CLI against this host and returns its combined
// output, trimmed.
func (h *Host) Docker(args ...string) (string, error) {
	return h.docker(nil, args...)
}

func (h *Host) docker(stdin io.Reader, args ...string) (string, error) {
	return run(h.opts.CommandTimeout, stdin, "docker", append([]string{"-H", h.Socket()}, args...)...)
}

// MustDocker is Docker that fails the test on error.
func (h *Host) MustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Docker(args...)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	return out
}

// Exec runs a command in the host's network and mount namespaces (those of
// its dockerd) and returns the combined output, trimmed. The working
// directory is /, so give programs by absolute path or PATH name.
func (h *Host) Exec(args ...string) (string, error) {
	return run(h.opts.CommandTimeout, nil, "nsenter", h.nsenterArgs(args)...)
}

// MustExec is Exec that fails the test on error.
func (h *Host) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Exec(args...)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	return out
}

func (h *Host) nsenterArgs(args []string) []string {
	return append([]string{"--net=" + h.NetnsPath(), "--mount=" + h.MountNSPath(), "--"}, args...)
}

// Links lists the link names in the host's network namespace, sorted.
func (h *Host) Links() ([]string, error) {
	return linkNames(h.Netns)
}

func (h *Host) snapshotLinks() error {
	links, err := h.Links()
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.baseLinks = links
	h.mu.Unlock()
	return nil
}

// removeContainers force-removes every container, so dockerd stops fast and
// plugins still running see their endpoints leave. Errors only mean
// dockerd is already gone; teardown kills whatever is left anyway.
func (h *Host) removeContainers() {
	out, err := h.Docker("ps", "-aq")
	if err != nil || out == "" {
		return
	}
	h.Docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
}

func (h *Host) importImage(tarball []byte) error {
	if _, err := h.docker(bytes.NewReader(tarball), "import", "-c", `CMD ["/bin/sh"]`, "-", Image); err != nil {
		return fmt.Errorf("import %s into %q: %w", Image, h.Name, err)
	}
	return nil
}

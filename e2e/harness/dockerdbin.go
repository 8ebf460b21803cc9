package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// DockerdEnv names the dockerd binary the hosts run; unset, the dockerd in
// PATH. `make test` runs the e2e suites on Debian 12's dockerd 20.10 from
// PATH and on Docker 26.1's from hack/docker26.sh with this set.
const DockerdEnv = "VXNET_DOCKERD"

// dockerdBin is the dockerd the hosts run and the docker-proxy beside it,
// which dockerd gets as --userland-proxy-path so that a dockerd outside
// PATH never runs another version's proxy.
type dockerdBin struct {
	path   string
	proxy  string
	banner string // `dockerd --version`: "Docker version 26.1.5+dfsg1, build 411e817"
}

var dockerdBannerRE = regexp.MustCompile(`^Docker version [^,\s]+, build \S+$`)

// findDockerd resolves DockerdEnv (or dockerd in PATH) and the docker-proxy
// in the same directory, and asks the binary for its version.
func findDockerd() (dockerdBin, error) {
	path, from := os.Getenv(DockerdEnv), DockerdEnv
	if path == "" {
		p, err := exec.LookPath("dockerd")
		if err != nil {
			return dockerdBin{}, fmt.Errorf("dockerd in PATH: %w", err)
		}
		path, from = p, "PATH"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return dockerdBin{}, fmt.Errorf("dockerd %q (from %s): %w", path, from, err)
	}
	b := dockerdBin{path: abs, proxy: filepath.Join(filepath.Dir(abs), "docker-proxy")}
	for _, f := range []string{b.path, b.proxy} {
		if err := checkExecutable(f); err != nil {
			return dockerdBin{}, fmt.Errorf("dockerd %q (from %s): %w", abs, from, err)
		}
	}
	out, err := run(30*time.Second, nil, b.path, "--version")
	if err != nil {
		return dockerdBin{}, fmt.Errorf("dockerd %q (from %s): %w", abs, from, err)
	}
	if !dockerdBannerRE.MatchString(out) {
		return dockerdBin{}, fmt.Errorf("dockerd %q (from %s): --version printed %q, want \"Docker version X, build Y\"", abs, from, out)
	}
	b.banner = out
	return b, nil
}

func checkExecutable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%q is not an executable file (mode %s)", path, st.Mode())
	}
	return nil
}

package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateDirGlobs are the per-host directories, found by name alone.
var stateDirGlobs = []string{"/run/" + namePrefix + "*", "/var/lib/" + namePrefix + "*"}

// Cleanup removes everything named vxe2e-* that a run left, in dependency
// order: processes (found by pidfiles, namespaces, command lines and
// container ids), mounts, network namespaces, links, directories. It is
// idempotent and works on partial setups. It must not run while a cluster
// of another process is up; Start calls it holding the machine-wide lock.
func Cleanup() error {
	var errs []error
	errs = append(errs, killHarnessProcs())
	errs = append(errs, unmountHarness())
	errs = append(errs, deleteNetnses())
	links, err := rootLinks()
	errs = append(errs, err)
	for _, l := range links {
		errs = append(errs, deleteLink(l))
	}
	errs = append(errs, removeStateDirs())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// A network namespace dies asynchronously, taking its veth ends along.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, err := Leftovers()
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("left after cleanup: %s", strings.Join(left, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Leftovers lists everything of the harness that exists: processes, mounts
// naming vxe2e, network namespaces, root-namespace links and directories.
func Leftovers() ([]string, error) {
	var left []string
	procs, err := harnessProcs()
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	for _, p := range procs {
		left = append(left, p.String())
	}
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		if strings.Contains(m.line, namePrefix) {
			left = append(left, "mount "+m.point)
		}
	}
	nsFiles, _ := filepath.Glob("/run/netns/" + namePrefix + "*")
	for _, f := range nsFiles {
		left = append(left, "netns "+filepath.Base(f))
	}
	links, err := rootLinks()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		left = append(left, "link "+l)
	}
	for _, g := range stateDirGlobs {
		dirs, _ := filepath.Glob(g)
		for _, d := range dirs {
			left = append(left, "dir "+d)
		}
	}
	return left, nil
}

type mount struct {
	point string
	line  string
}

// readMounts reads the root mount namespace's mount table.
func readMounts() ([]mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var ms []mount
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		ms = append(ms, mount{point: unescapeMount(f[4]), line: line})
	}
	return ms, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHarnessPath(p string) bool {
	for _, root := range []string{"/run/" + namePrefix, "/var/lib/" + namePrefix, "/run/netns/" + namePrefix} {
		if strings.HasPrefix(p, root) {
			return true
		}
	}
	return false
}

// unmountHarness unmounts every mount below the harness's paths, deepest
// first, detaching those that are busy. Stacked mounts take more passes.
func unmountHarness() error {
	for pass := 0; pass < 10; pass++ {
		mounts, err := readMounts()
		if err != nil {
			return err
		}
		var points []string
		for _, m := range mounts {
			if isHarnessPath(m.point) {
				points = append(points, m.point)
			}
		}
		if len(points) == 0 {
			return nil
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		for _, p := range points {
			if err := syscall.Unmount(p, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
					return fmt.Errorf("unmount %q: %w", p, err)
				}
			}
		}
	}
	return errors.New("mounts below /run/vxe2e-*, /var/lib/vxe2e-* or /run/netns/vxe2e-* survive 10 unmount passes")
}

// deleteNetnses removes the vxe2e-* namespace files (already unmounted),
// as `ip netns delete` does.
func deleteNetnses() error {
	files, _ := filepath.Glob("/run/netns/" + namePrefix + "*")
	var errs []error
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete netns %q: %w", filepath.Base(f), err))
		}
	}
	return errors.Join(errs...)
}

// removeStateDirs removes /run/vxe2e-* and /var/lib/vxe2e-*, refusing to
// descend where something is still mounted.
func removeStateDirs() error {
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range stateDirGlobs {
		dirs, _ := filepath.Glob(g)
		for _, d := range dirs {
			if m := mountBelow(mounts, d); m != "" {
				errs = append(errs, fmt.Errorf("remove %q: %q is still mounted", d, m))
				continue
			}
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, fmt.Errorf("remove %q: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

func mountBelow(mounts []mount, dir string) string {
	for _, m := range mounts {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			return m.point
		}
	}
	return ""
}

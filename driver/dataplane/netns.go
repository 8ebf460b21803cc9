package dataplane

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// onLockedThread runs fn in a new goroutine locked to its OS thread, then
// switches the thread back to the network namespace it started in. This is
// the only code that lets a thread change namespace. If the switch back
// fails the thread stays locked, so the Go runtime destroys it when the
// goroutine exits instead of reusing a thread in the wrong namespace.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer origin.Close()
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// inNetns runs fn on a locked thread inside the namespace at path. Each
// call is a switch into the namespace and back, logged at Debug ("setns:
// enter"): on a loaded host a switch waits about as long as a store read
// (issue #13), so callbacks on the hot path count them (EnsureEndpoint: one).
func inNetns(log *logrus.Entry, path string, fn func() error) error {
	log.WithField("netns", path).Debug(msgEnterNetns)
	return onLockedThread(func() error {
		target, err := netns.GetFromPath(path)
		if err != nil {
			return fmt.Errorf("open netns %q: %w", path, err)
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("enter netns %q: %w", path, err)
		}
		return fn()
	})
}

// currentNetns opens the network namespace of the calling goroutine's
// thread (the host's in production; host-side calls run there). The
// thread is locked while it is read, so no other goroutine can have
// switched it meanwhile.
func currentNetns() (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := netns.Get()
	if err != nil {
		return -1, fmt.Errorf("open current netns: %w", err)
	}
	return h, nil
}

// msgEnterNetns is the Debug message of each switch into a namespace.
const msgEnterNetns = "setns: enter"

// withNsFd calls fn with an open file descriptor of the namespace at path,
// for netlink calls that move links into it.
func withNsFd(path string, fn func(fd int) error) error {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %q: %w", path, err)
	}
	defer h.Close()
	return fn(int(h))
}

// ensureNetnsDir creates dir and makes it a shared mount point (binding it
// onto itself first if it is not a mount point yet), like iproute2 does for
// /run/netns. Unmounting a namespace file then propagates to every mount
// namespace that copied the directory, so no copy keeps a namespace alive.
func ensureNetnsDir(log *logrus.Entry, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create netns dir %q: %w", dir, err)
	}
	bound := false
	for {
		log.WithField("dir", dir).Debug("mount: make shared")
		err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make netns dir %q a shared mount: %w", dir, err)
		}
		log.WithField("dir", dir).Debug("mount: bind onto itself")
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind netns dir %q onto itself: %w", dir, err)
		}
		bound = true
	}
}

// isNetnsMount reports whether path is a live namespace bind mount. A
// missing file is false; a plain file left behind (e.g. after a reboot with
// a persistent NetnsDir) is false too.
func isNetnsMount(path string) (bool, error) {
	var st unix.Statfs_t
	err := unix.Statfs(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("statfs netns file %q: %w", path, err)
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// ensureNetnsFile makes path a live network namespace: reused if it already
// is one, otherwise created. It reports whether it created one.
func ensureNetnsFile(log *logrus.Entry, path string) (bool, error) {
	live, err := isNetnsMount(path)
	if err != nil || live {
		return false, err
	}
	// Whatever is there is stale: clear it before creating.
	if err := removeNetnsFile(log, path); err != nil {
		return false, err
	}
	if err := createNetnsFile(log, path); err != nil {
		return false, err
	}
	log.WithField("netns", path).Info("created network namespace")
	return true, nil
}

// createNetnsFile unshares a new network namespace on a locked thread and
// bind-mounts it at path. The thread returns to its namespace afterwards.
func createNetnsFile(log *logrus.Entry, path string) (err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file %q: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close netns file %q: %w", path, err)
	}
	defer func() {
		if err != nil {
			if rerr := os.Remove(path); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove netns file %q: %w", path, rerr))
			}
		}
	}()
	return onLockedThread(func() error {
		log.WithField("netns", path).Debug("unshare(CLONE_NEWNET)")
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare netns for %q: %w", path, err)
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		log.WithFields(logrus.Fields{"netns": path, "src": src}).Debug("mount: bind netns")
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount netns %q: %w", path, err)
		}
		return nil
	})
}

// removeNetnsFile lazily unmounts and removes a namespace file; missing is
// not an error.
func removeNetnsFile(log *logrus.Entry, path string) error {
	log.WithField("netns", path).Debug("umount(MNT_DETACH)")
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %q: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns file %q: %w", path, err)
	}
	return nil
}

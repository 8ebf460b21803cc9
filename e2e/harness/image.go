package harness

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// busyboxPath is the static busybox (package busybox-static) the image is
// made of.
const busyboxPath = "/bin/busybox"

// imageTar is the image's root file system as a tar stream, built once per
// test process and imported into every host.
var imageTar = sync.OnceValues(buildImageTar)

// checkStaticBusybox fails unless p is a statically linked ELF binary (no
// interpreter), the only kind that runs in an image without libc.
func checkStaticBusybox(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("static busybox at %s (%v)", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("static busybox at %s (it is dynamically linked; install busybox-static)", p)
		}
	}
	return nil
}

// probeSource is the package of vxprobe, the image's static network probe
// (UDP broadcast/multicast, TCP throughput), relative to the module root.
const probeSource = "e2e/vxprobe"

// buildProbe builds vxprobe static (CGO_ENABLED=0) and returns the binary.
func buildProbe() ([]byte, error) {
	main, err := findUp(probeSource + "/main.go")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", probeSource, err)
	}
	tmp, err := os.MkdirTemp("", "vxprobe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := path.Join(tmp, "vxprobe")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = path.Dir(main)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %w: %s", probeSource, err, msg)
	}
	return os.ReadFile(out)
}

// buildImageTar makes a root file system of busybox, its applet links under
// their usual directories, vxprobe, a minimal /etc, and /tmp.
func buildImageTar() ([]byte, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("build image %s: %w", Image, err)
	}
	probe, err := buildProbe()
	if err != nil {
		return nil, fmt.Errorf("build image %s: %w", Image, err)
	}
	out, err := exec.Command(busyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("build image %s: %s --list-full: %w", Image, busyboxPath, err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)

	var buf bytes.Buffer
	w := &tarWriter{tw: tar.NewWriter(&buf), dirs: map[string]bool{}}
	for _, d := range []string{"dev", "proc", "sys", "root", "etc"} {
		w.dir(d, 0o755)
	}
	w.dir("tmp", 0o1777)
	w.file("bin/busybox", 0o755, bin)
	w.file("bin/vxprobe", 0o755, probe)
	for _, a := range applets {
		if a != "bin/busybox" {
			w.symlink(a, "/bin/busybox")
		}
	}
	w.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	w.file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	w.file("etc/hosts", 0o644, []byte("127.0.0.1\tlocalhost\n"))
	if err := w.close(); err != nil {
		return nil, fmt.Errorf("build image %s: %w", Image, err)
	}
	return buf.Bytes(), nil
}

// tarWriter writes entries, creating parent directories first and keeping
// the first error.
type tarWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
	err  error
}

func (w *tarWriter) header(h *tar.Header, body []byte) {
	if w.err != nil {
		return
	}
	if parent := path.Dir(strings.TrimSuffix(h.Name, "/")); parent != "." && !w.dirs[parent] {
		w.dir(parent, 0o755)
	}
	h.ModTime = time.Unix(0, 0)
	if w.err = w.tw.WriteHeader(h); w.err == nil && body != nil {
		_, w.err = w.tw.Write(body)
	}
}

func (w *tarWriter) dir(name string, mode int64) {
	if w.dirs[name] {
		return
	}
	w.dirs[name] = true
	w.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}, nil)
}

func (w *tarWriter) file(name string, mode int64, body []byte) {
	w.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body)
}

func (w *tarWriter) symlink(name, target string) {
	w.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil)
}

func (w *tarWriter) close() error {
	if w.err != nil {
		return w.err
	}
	return w.tw.Close()
}

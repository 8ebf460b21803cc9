// Package e2e tests vxnet against real dockerd hosts (network namespaces on
// a 198.18.0.0/24 underlay, see harness), the real kernel and real stores.
// TestMain builds the vxnet binary once; each test starts its own cluster,
// its own plugins, and ends with a leak check.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// vxnetBin is the plugin binary built by TestMain.
var vxnetBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vxnet-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vxnetBin = filepath.Join(dir, "vxnet")
	build := exec.Command("go", "build", "-o", vxnetBin, "../cmd/vxnet")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build vxnet: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

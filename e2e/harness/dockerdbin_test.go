package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindDockerd checks which dockerd and docker-proxy the hosts would run
// for VXNET_DOCKERD, with stand-in binaries (shell scripts).
func TestFindDockerd(t *testing.T) {
	const banner = "Docker version 26.1.5+dfsg1, build 411e817"
	script := func(out string) string { return "#!/bin/sh\necho '" + out + "'\n" }
	for _, tc := range []struct {
		name    string
		files   map[string]string // name → content; mode 0755 unless "noexec"
		noexec  string
		wantErr string
	}{
		{name: "ok", files: map[string]string{"dockerd": script(banner), "docker-proxy": script("")}},
		{name: "no proxy beside it", files: map[string]string{"dockerd": script(banner)}, wantErr: "docker-proxy"},
		{name: "no dockerd", files: map[string]string{"docker-proxy": script("")}, wantErr: "no such file"},
		{name: "proxy not executable", files: map[string]string{"dockerd": script(banner), "docker-proxy": script("")},
			noexec: "docker-proxy", wantErr: "not an executable file"},
		{name: "not a dockerd", files: map[string]string{"dockerd": script("containerd 1.6"), "docker-proxy": script("")},
			wantErr: `--version printed "containerd 1.6"`},
		{name: "dockerd fails", files: map[string]string{"dockerd": "#!/bin/sh\nexit 3\n", "docker-proxy": script("")},
			wantErr: "exit status 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				mode := os.FileMode(0o755)
				if name == tc.noexec {
					mode = 0o644
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv(DockerdEnv, filepath.Join(dir, "dockerd"))
			b, err := findDockerd()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), DockerdEnv) {
					t.Fatalf("err %v, want one naming %s and containing %q", err, DockerdEnv, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := dockerdBin{path: filepath.Join(dir, "dockerd"), proxy: filepath.Join(dir, "docker-proxy"), banner: banner}
			if b != want {
				t.Fatalf("got %+v, want %+v", b, want)
			}
		})
	}
}

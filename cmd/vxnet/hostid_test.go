package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The host ID is the advertise address at first start, kept in the file,
// and the kept one afterwards, whatever the address becomes; --host-id
// wins; a damaged file is an error naming it.
func TestHostIDKept(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "host-id")
	c := &config{HostIDFile: file}
	id, err := hostID(c, "198.18.0.11")
	if err != nil || id != "198.18.0.11" {
		t.Fatalf("first start: %q, %v", id, err)
	}
	id, err = hostID(c, "198.18.0.99") // renumbered
	if err != nil || id != "198.18.0.11" {
		t.Fatalf("after renumbering: %q, %v; want the kept 198.18.0.11", id, err)
	}
	if id, err := hostID(&config{HostID: "h7", HostIDFile: file}, "198.18.0.99"); err != nil || id != "h7" {
		t.Fatalf("--host-id: %q, %v", id, err)
	}
	if err := os.WriteFile(file, []byte("bad/id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hostID(c, "198.18.0.11"); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("damaged host ID file: %v; want an error naming %s", err, file)
	}
	for _, bad := range []string{"", "a/b", "a b", strings.Repeat("x", 129)} {
		if validHostID(bad) == nil {
			t.Errorf("validHostID(%q) accepted", bad)
		}
	}
}

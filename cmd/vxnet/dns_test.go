package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dns config lists vxnet's resolver first, then the host's non-loopback
// name servers in their order; a resolv.conf with none says so.
func TestDNSConfig(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(rc, []byte("search example.com\nnameserver 127.0.0.53\nnameserver 198.18.0.1\n# nameserver 1.1.1.1\nnameserver fd00::53\noptions ndots:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var warn strings.Builder
	got, err := dnsConfig("169.254.53.53", rc, &warn)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"dns\": [\n    \"169.254.53.53\",\n    \"198.18.0.1\",\n    \"fd00::53\"\n  ]\n}"
	if got != want || warn.Len() != 0 {
		t.Errorf("dnsConfig = %s (warning %q), want %s", got, warn.String(), want)
	}
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	warn.Reset()
	if got, err := dnsConfig("169.254.53.53", rc, &warn); err != nil || !strings.Contains(got, `"169.254.53.53"`) || !strings.Contains(warn.String(), "no non-loopback name server") {
		t.Errorf("loopback only: %q, %v, warning %q; want vxnet's address alone and a warning", got, err, warn.String())
	}
	if _, err := dnsConfig("not-an-ip", rc, &warn); err == nil || !strings.Contains(err.Error(), "not-an-ip") {
		t.Errorf("bad --dns-addr: %v, want an error naming it", err)
	}
	if _, err := dnsConfig("169.254.53.53", filepath.Join(dir, "missing"), &warn); err == nil {
		t.Error("a missing resolv.conf gave no error")
	}
}

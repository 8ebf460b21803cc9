package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := parseConfig(nil, env(nil), io.Discard)
	if err != nil || c.Store != "bolt:///var/lib/vxnet/vxnet.db" || c.Socket != "/run/docker/plugins/vxnet.sock" || c.VXLANPort != 4789 || c.Scope != "local" || c.SysctlDir != "/proc/sys" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = parseConfig([]string{"--vxlan-port", "4790"}, env(map[string]string{"VXNET_STORE": "consul://h:8500", "VXNET_VXLAN_PORT": "5000", "VXNET_DEAD_AFTER": "30s"}), io.Discard)
	if err != nil || c.Store != "consul://h:8500" || c.VXLANPort != 4790 || c.DeadAfter != 30*time.Second {
		t.Fatalf("env and flags: %+v, %v", c, err)
	}
	for _, off := range []string{"off", ""} {
		if c, err := parseConfig([]string{"--dns-addr", off, "--dns-upstream", "198.18.0.1, fd00::53"}, env(nil), io.Discard); err != nil || c.DNSAddr != off {
			t.Fatalf("--dns-addr %q: %+v, %v; want it accepted (names off)", off, c, err)
		}
	}
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--vxlan-port", "0"}, nil, "--vxlan-port 0 is out of range"},
		{[]string{"--mtu", "100"}, nil, "--mtu 100 is out of range"},
		{[]string{"--advertise-addr", "nope"}, nil, `--advertise-addr "nope" is not an IP address`},
		{[]string{"--scope", "swarm"}, nil, `--scope "swarm"`},
		{[]string{"--log-format", "xml"}, nil, `--log-format "xml"`},
		{[]string{"--socket", "rel.sock"}, nil, "want an absolute path"},
		{[]string{"--dead-after", "1s"}, nil, "dead-after"},
		{[]string{"--forget-after", "30s"}, nil, "--forget-after 30s: want 0 (never) or at least 1m"},
		{[]string{"--host-id", "a/b"}, nil, `--host-id: host ID "a/b"`},
		{[]string{"--host-id-file", "rel"}, nil, `--host-id-file "rel": want an absolute path`},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{nil, map[string]string{"VXNET_METRICS_ADDR": "9414"}, `--metrics-addr "9414": want host:port`},
		{[]string{"--bogus"}, nil, "flag provided but not defined"},
		{[]string{"--dns-addr", "nope"}, nil, `--dns-addr "nope" is not an IP address`},
		{nil, map[string]string{"VXNET_DNS_UPSTREAM": "198.18.0.1,x"}, `--dns-upstream: "x" is not an IP address`},
		{nil, map[string]string{"VXNET_VXLAN_PORT": "x"}, `environment VXNET_VXLAN_PORT="x"`},
	} {
		_, err := parseConfig(tt.args, env(tt.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v %v: %v, want %q", tt.args, tt.env, err, tt.want)
		}
	}
}

// FuzzParseConfig: any command line and environment value either parses
// into a configuration that passes validate, or fails with an error that
// names the flag or variable; it never panics.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []struct{ args, key, value string }{
		{"--vxlan-port 4790", "VXNET_STORE", "consul://h:8500"},
		{"--mtu 1400 --scope global", "VXNET_DEAD_AFTER", "30s"},
		{"--advertise-addr 198.18.0.11", "VXNET_HEARTBEAT_INTERVAL", "1ms"},
		{"--reconcile-interval -1s", "VXNET_MTU", "x"},
		{"extra", "VXNET_LOG_FORMAT", "json"},
	} {
		f.Add(s.args, s.key, s.value)
	}
	f.Fuzz(func(t *testing.T, args, key, value string) {
		env := func(k string) string {
			if k == key {
				return value
			}
			return ""
		}
		c, err := parseConfig(strings.Fields(args), env, io.Discard)
		if errors.Is(err, flag.ErrHelp) {
			return // -h: serve prints the usage and exits 0
		}
		if err != nil {
			if !strings.Contains(err.Error(), "-") && !strings.Contains(err.Error(), "VXNET_") && !strings.Contains(err.Error(), "argument") {
				t.Fatalf("error names no flag or variable: %v", err)
			}
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("parsed configuration does not validate: %v", err)
		}
	})
}

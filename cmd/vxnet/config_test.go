package main

import (
	"errors"
	"flag"
	"io"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := parseConfig(nil, env(nil), io.Discard)
	if err != nil || c.Store != "bolt:///var/lib/vxnet/vxnet.db" || c.Socket != "/run/docker/plugins/vxnet.sock" || c.VXLANPort != 4789 || c.Scope != "local" || c.SysctlDir != "/proc/sys" || c.DockerHost != "unix:///run/docker.sock" {
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
		{[]string{"--dead-after", "1s"}, nil, "--heartbeat-interval 3s / --dead-after 1s: want"},
		{[]string{"--forget-after", "30s"}, nil, "--forget-after 30s: want 0 (never) or at least 1m"},
		{[]string{"--host-id", "a/b"}, nil, `--host-id: host ID "a/b"`},
		{[]string{"--host-id-file", "rel"}, nil, `--host-id-file "rel": want an absolute path`},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{nil, map[string]string{"VXNET_METRICS_ADDR": "9414"}, `--metrics-addr "9414": want host:port`},
		{[]string{"--pprof-addr", "6060"}, nil, `--pprof-addr "6060": want host:port`},
		{[]string{"--bogus"}, nil, "flag provided but not defined"},
		{[]string{"--dns-addr", "nope"}, nil, `--dns-addr "nope" is not an IP address`},
		{nil, map[string]string{"VXNET_DNS_UPSTREAM": "198.18.0.1,x"}, `--dns-upstream: "x" is not an IP address`},
		{nil, map[string]string{"VXNET_VXLAN_PORT": "x"}, `environment VXNET_VXLAN_PORT="x"`},
		{[]string{"--docker-host", "/run/docker.sock"}, nil, `--docker-host: docker host "/run/docker.sock": want unix:///path/docker.sock or tcp://host:port`},
		{nil, map[string]string{"VXNET_DOCKER_HOST": "tcp://h"}, `--docker-host: docker host "tcp://h"`},
		{[]string{"--docker-socket", "/run/docker.sock"}, nil, "flag provided but not defined: -docker-socket"},
	} {
		_, err := parseConfig(tt.args, env(tt.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v %v: %v, want %q", tt.args, tt.env, err, tt.want)
		}
	}
}

// FuzzParseConfig: any command line and environment value either parses
// into a configuration inside the documented bounds (checked here, not by
// validate) that the flags alone reproduce, or fails with an error that
// names a flag or argument the input gave, or the variable set; it never
// panics.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []struct{ args, key, value string }{
		{"--vxlan-port 4790", "VXNET_STORE", "consul://h:8500"},
		{"--mtu 1400 --scope global", "VXNET_DEAD_AFTER", "30s"},
		{"--advertise-addr 198.18.0.11", "VXNET_HEARTBEAT_INTERVAL", "1ms"},
		{"--reconcile-interval -1s", "VXNET_MTU", "x"},
		{"extra", "VXNET_LOG_FORMAT", "json"},
		{"--socket rel.sock", "VXNET_MTU", "1400"},
		{"--heartbeat-interval 6s", "VXNET_FORGET_AFTER", "0"},
		{"--mtu 575", "VXNET_SCOPE", "global"},
		{"-", "VXNET_VXLAN_PORT", "65536"},
		{"--metrics-addr=:9414 --forget-after 59s", "VXNET_HOST_ID", "a/b"},
		{"-store=bolt:///x.db", "VXNET_HOST_ID_FILE", "rel"},
		{"--", "VXNET_LOG_FORMAT", "xml"},
		{"---mtu 1400", "VXNET_ADVERTISE_ADDR", "nope"},
		{"--docker-host tcp://127.0.0.1:2375", "VXNET_DOCKER_HOST", "unix://rel.sock"},
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
		fields := strings.Fields(args)
		c, err := parseConfig(fields, env, io.Discard)
		if errors.Is(err, flag.ErrHelp) {
			return // -h: serve prints the usage and exits 0
		}
		if err != nil {
			if named := givenNames(fields, key, value); !namesAny(err.Error(), named) {
				t.Fatalf("args %q, %s=%q: error names none of %q: %v", fields, key, value, named, err)
			}
			return
		}
		if bad := outOfBounds(c); len(bad) > 0 {
			t.Fatalf("args %q, %s=%q parsed into %+v, out of bounds: %s", fields, key, value, c, strings.Join(bad, "; "))
		}
		again, err := parseConfig(asFlags(c), env0, io.Discard)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("args %q, %s=%q: %+v does not round-trip through its flags %q: %+v, %v", fields, key, value, c, asFlags(c), again, err)
		}
	})
}

func env0(string) string { return "" }

// givenNames are the words an error about this input may name: each
// argument as given (or quoted), each flag name given (with one dash, as package flag
// says it, and with two), and the variable with its flag when it is set.
func givenNames(args []string, key, value string) []string {
	var out []string
	for _, a := range args {
		out = append(out, a, strconv.Quote(a))
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && name != "" {
			out = append(out, "-"+name, "--"+name)
		}
	}
	if value != "" && strings.HasPrefix(key, "VXNET_") {
		flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(key, "VXNET_"), "_", "-"))
		out = append(out, key, "--"+flagName)
	}
	return out
}

// namesAny tells whether msg holds one of names as a word of its own (not
// followed by a letter, digit, '-' or '_', so "-m" is not found in "-mtu").
func namesAny(msg string, names []string) bool {
	for _, n := range names {
		for i := strings.Index(msg, n); i >= 0; {
			end := i + len(n)
			if end == len(msg) || !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", rune(msg[end])) {
				return true
			}
			j := strings.Index(msg[i+1:], n)
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	return false
}

// outOfBounds checks a parsed configuration against the bounds the flags'
// help and the README give, written out again here so that a check dropped
// from validate shows.
func outOfBounds(c *config) []string {
	var bad []string
	check := func(ok bool, what string) {
		if !ok {
			bad = append(bad, what)
		}
	}
	check(c.VXLANPort >= 1 && c.VXLANPort <= 65535, "vxlan port outside 1..65535")
	check(c.MTU == 0 || (c.MTU >= 576 && c.MTU <= 65535), "mtu neither 0 nor in 576..65535")
	_, aerr := netip.ParseAddr(c.AdvertiseAddr)
	check(c.AdvertiseAddr == "" || aerr == nil, "advertise address not an IP address")
	check(c.Scope == "local" || c.Scope == "global", "scope neither local nor global")
	check(c.LogFormat == "text" || c.LogFormat == "json", "log format neither text nor json")
	check(c.ReconcileInterval >= 0, "negative reconcile interval")
	check(c.HeartbeatInterval >= 100*time.Millisecond, "heartbeat interval under 100ms")
	check(c.DeadAfter >= 2*c.HeartbeatInterval, "dead-after under twice the heartbeat interval")
	check(c.ForgetAfter == 0 || c.ForgetAfter >= time.Minute, "forget-after neither 0 nor at least 1m")
	check(c.HostID == "" || validHostID(c.HostID) == nil, "invalid host ID")
	check(c.HostIDFile == "" || strings.HasPrefix(c.HostIDFile, "/"), "relative host ID file")
	check(strings.HasPrefix(c.Socket, "/"), "relative socket path")
	if u, err := url.Parse(c.DockerHost); err != nil || !(u.Scheme == "unix" && strings.HasPrefix(u.Path, "/") || u.Scheme == "tcp" && u.Port() != "") {
		check(false, "docker host neither unix:///path nor tcp://host:port")
	}
	if c.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(c.MetricsAddr)
		check(err == nil && port != "", "metrics address not host:port")
	}
	return bad
}

// asFlags is c as a command line giving every flag.
func asFlags(c *config) []string {
	var shadow config
	fs := newFlagSet(&shadow, io.Discard)
	shadow = *c // the flag values point into shadow: they show c now
	var out []string
	fs.VisitAll(func(f *flag.Flag) { out = append(out, "--"+f.Name+"="+f.Value.String()) })
	return out
}

// The default heartbeat leaves hosts of the earlier version (which call a
// host silent after --dead-after without its key moving) three beats per
// --dead-after, and beats less often than every 2 s: each beat is a
// request (and on Consul a renewal every third of the session's TTL).
func TestDefaultHeartbeat(t *testing.T) {
	c, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HeartbeatInterval <= 2*time.Second {
		t.Errorf("--heartbeat-interval defaults to %s: want more than 2s (a request per beat on every host)", c.HeartbeatInterval)
	}
	if c.DeadAfter < 3*c.HeartbeatInterval {
		t.Errorf("--heartbeat-interval %s, --dead-after %s: want three beats per dead-after, so one lost beat makes no host silent", c.HeartbeatInterval, c.DeadAfter)
	}
	if simAgentTimes.HeartbeatInterval != c.HeartbeatInterval || simAgentTimes.DeadAfter != c.DeadAfter {
		t.Errorf("vxnet simulate runs heartbeats %s / dead-after %s, the plugin %s / %s: it must measure the plugin's defaults", simAgentTimes.HeartbeatInterval, simAgentTimes.DeadAfter, c.HeartbeatInterval, c.DeadAfter)
	}
}

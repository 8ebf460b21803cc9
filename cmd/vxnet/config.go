package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vxnet/vxnet/dockerapi"
	"github.com/vxnet/vxnet/scope"
)

// config is everything `vxnet serve` takes. Every flag can also be set by
// an environment variable VXNET_<FLAG>, e.g. VXNET_STORE; a flag given on
// the command line wins.
type config struct {
	Store             string
	Socket            string
	AdvertiseAddr     string
	HostID            string
	HostIDFile        string
	VXLANPort         int
	MTU               int
	NetnsDir          string
	SysctlDir         string
	Scope             string
	LogLevel          string
	LogFormat         string
	ReconcileInterval time.Duration
	HeartbeatInterval time.Duration
	DeadAfter         time.Duration
	ForgetAfter       time.Duration
	MetricsAddr       string
	PprofAddr         string
	DockerHost        string
	DNSAddr           string
	DNSUpstream       string
}

func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vxnet serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Store, "store", "bolt:///var/lib/vxnet/vxnet.db", "state store: bolt:///path/file.db or consul://host:port[/prefix]")
	fs.StringVar(&c.Socket, "socket", "/run/docker/plugins/vxnet.sock", "plugin socket path (created mode 0600)")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "underlay address of this host, VXLAN source (default: the address of the default-route interface)")
	fs.StringVar(&c.HostID, "host-id", "", "this host's ID in the cluster (default: read from --host-id-file, or the advertise address at first start, then kept there)")
	fs.StringVar(&c.HostIDFile, "host-id-file", "/var/lib/vxnet/host-id", "where the host ID is kept across restarts, so renumbering the host does not change it")
	fs.IntVar(&c.VXLANPort, "vxlan-port", 4789, "VXLAN UDP port")
	fs.IntVar(&c.MTU, "mtu", 0, "MTU of vxnet networks without -o com.docker.network.driver.mtu (0 = underlay MTU - 50, - 70 over IPv6)")
	fs.StringVar(&c.NetnsDir, "netns-dir", "/run/vxnet/netns", "directory for the networks' namespace files")
	fs.StringVar(&c.SysctlDir, "sysctl-dir", "/proc/sys", "a writable /proc/sys (a managed plugin's own is read-only; it mounts a procfs at /host/proc)")
	fs.StringVar(&c.Scope, "scope", string(scope.Local), "driver scope reported to Docker: local (standalone hosts) or global (swarm)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", 5*time.Second, "how often the kernel state is checked against the store and repaired (0 = only at start)")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", 3*time.Second, "how often this host writes its heartbeat to the store")
	fs.DurationVar(&c.DeadAfter, "dead-after", 10*time.Second, "a host whose heartbeat has not moved for this long is silent and probed: if its underlay stops answering, its FDB/neighbour entries are left out until it answers (its addresses stay leased)")
	fs.DurationVar(&c.ForgetAfter, "forget-after", 24*time.Hour, "a host silent for this long is forgotten as by `vxnet host forget`: its records, memberships and addresses are released (0 = never)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /healthz on this host:port, e.g. 127.0.0.1:9414 (default off)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's /debug/pprof on this host:port for profiling, e.g. 127.0.0.1:6060 (default off; keep it on loopback)")
	fs.StringVar(&c.DockerHost, "docker-host", dockerapi.DefaultHost, "the local Docker API (unix:///path or tcp://host:port): container names come from there and, in global scope (swarm), services' endpoint modes, to refuse tasks of VIP-mode services, which vxnet cannot balance")
	fs.StringVar(&c.DNSAddr, "dns-addr", defaultDNSAddr, "address of the name server for containers of other hosts, on the link vxnet-dns; dockerd's --dns lists it first (\"\" or off disables; see `vxnet dns config`)")
	fs.StringVar(&c.DNSUpstream, "dns-upstream", "", "name servers that queries of other clients (default-bridge containers) are relayed to, comma-separated: those dockerd's --dns lists after vxnet's (default: the host's resolv.conf, as `vxnet dns config` prints)")
	return fs
}

// parseConfig reads flags over environment over defaults, and validates.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, out)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "VXNET_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("environment %s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	if c.VXLANPort < 1 || c.VXLANPort > 65535 {
		errs = append(errs, fmt.Errorf("--vxlan-port %d is out of range 1..65535", c.VXLANPort))
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		errs = append(errs, fmt.Errorf("--mtu %d is out of range 576..65535 (or 0 for auto)", c.MTU))
	}
	if c.AdvertiseAddr != "" {
		if _, err := netip.ParseAddr(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("--advertise-addr %q is not an IP address", c.AdvertiseAddr))
		}
	}
	if _, err := scope.Parse(c.Scope); err != nil {
		errs = append(errs, fmt.Errorf("--scope %q: want local or global", c.Scope))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if c.ReconcileInterval < 0 {
		errs = append(errs, fmt.Errorf("--reconcile-interval %s is negative", c.ReconcileInterval))
	}
	if c.HeartbeatInterval < 100*time.Millisecond || c.DeadAfter < 2*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("--heartbeat-interval %s / --dead-after %s: want an interval of at least 100ms and dead-after of at least twice that", c.HeartbeatInterval, c.DeadAfter))
	}
	if c.ForgetAfter != 0 && c.ForgetAfter < time.Minute {
		errs = append(errs, fmt.Errorf("--forget-after %s: want 0 (never) or at least 1m: a host's addresses must not be reused while it may still run containers", c.ForgetAfter))
	}
	if c.HostID != "" {
		if err := validHostID(c.HostID); err != nil {
			errs = append(errs, fmt.Errorf("--host-id: %w", err))
		}
	}
	if c.HostIDFile != "" && !strings.HasPrefix(c.HostIDFile, "/") {
		errs = append(errs, fmt.Errorf("--host-id-file %q: want an absolute path", c.HostIDFile))
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("--metrics-addr %q: want host:port, e.g. 127.0.0.1:9414", c.MetricsAddr))
		}
	}
	if c.PprofAddr != "" {
		if _, port, err := net.SplitHostPort(c.PprofAddr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("--pprof-addr %q: want host:port, e.g. 127.0.0.1:6060", c.PprofAddr))
		}
	}
	if _, _, err := dockerapi.ParseHost(c.DockerHost); err != nil {
		errs = append(errs, fmt.Errorf("--docker-host: %w", err))
	}
	if c.DNSAddr != "" && c.DNSAddr != "off" {
		if _, err := netip.ParseAddr(c.DNSAddr); err != nil {
			errs = append(errs, fmt.Errorf("--dns-addr %q is not an IP address", c.DNSAddr))
		}
	}
	if _, err := parseUpstreams(c.DNSUpstream); err != nil {
		errs = append(errs, err)
	}
	if !strings.HasPrefix(c.Socket, "/") {
		errs = append(errs, fmt.Errorf("--socket %q: want an absolute path", c.Socket))
	}
	return errors.Join(errs...)
}

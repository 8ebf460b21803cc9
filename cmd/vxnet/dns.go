package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/dockerapi"
	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/names"
)

// defaultDNSAddr is where vxnet answers for container names: link-local,
// so it never clashes with an address of the host's networks.
const defaultDNSAddr = "169.254.53.53"

// namesFeature wires package names into serve: a nil one is off.
type namesFeature struct {
	c      *config
	docker *dockerapi.Client
	log    *logrus.Entry
	table  *names.Table
}

// newNames returns the feature, or nil (logged once) when it is off: no
// --dns-addr, a single-host store (Docker's own DNS knows every
// container), or no Docker socket.
func newNames(c *config, docker *dockerapi.Client, log *logrus.Entry) *namesFeature {
	why := ""
	switch {
	case c.DNSAddr == "" || c.DNSAddr == "off":
		why = "--dns-addr is off"
	case !multiHost(c.Store):
		why = "the store is a single host's (Docker's own DNS resolves its containers)"
	default:
		if socket, _, err := dockerapi.ParseHost(c.DockerHost); err == nil && socket != "" {
			if _, err := os.Stat(socket); err != nil {
				why = fmt.Sprintf("no Docker socket at %s (--docker-host): %v", socket, err)
			}
		}
	}
	if why != "" {
		log.WithField("reason", why).Info("names: cross-host container names are off")
		return nil
	}
	log.WithField("docker", c.DockerHost).Info("names: cross-host container names are on")
	return &namesFeature{c: c, docker: docker, log: log, table: names.NewTable()}
}

// feed is the driver's OnEndpoints: endpoint records into the Table.
func (f *namesFeature) feed() func(string, []driver.Endpoint) {
	if f == nil {
		return nil
	}
	return func(network string, eps []driver.Endpoint) {
		recs := make([]names.Record, 0, len(eps))
		for _, ep := range eps {
			r := names.Record{Endpoint: ep.ID, Host: ep.Host, Names: ep.Names, Created: ep.Created}
			for _, p := range ep.Addrs {
				r.Addrs = append(r.Addrs, p.Addr())
			}
			recs = append(recs, r)
		}
		f.table.Set(network, recs)
	}
}

// start makes the resolver's link, serves it and runs the Syncer, until
// ctx ends.
func (f *namesFeature) start(ctx context.Context, drv *driver.Driver) error {
	if f == nil {
		return nil
	}
	addr := netip.MustParseAddr(f.c.DNSAddr) // validated
	ups, err := upstreams(f.c.DNSUpstream)
	if err != nil {
		return fmt.Errorf("names: %w", err)
	}
	if err := names.EnsureLink(addr); err != nil {
		return fmt.Errorf("names: %w", err)
	}
	var sy *names.Syncer
	clients := names.NewClients(func() { sy.Kick() }, time.Second)
	sy = names.NewSyncer(names.SyncerOptions{Docker: names.NewDocker(f.docker), Driver: drv, Clients: clients, Log: f.log, Every: 30 * time.Second, MinGap: 500 * time.Millisecond})
	res := &names.Resolver{Table: f.table, Clients: clients, Log: f.log, Timeout: time.Second,
		Forward: &names.Forwarder{Upstreams: ups, Timeout: 2 * time.Second}}
	if err := res.Serve(ctx, addr); err != nil {
		return err
	}
	go sy.Run(ctx)
	f.log.WithFields(logrus.Fields{"dns": addr, "upstreams": ups, "docker": f.c.DockerHost}).Info("names: serving container names of other hosts; dockerd needs --dns " + addr.String() + " first (vxnet dns config)")
	return nil
}

// dnsCmd is `vxnet dns config`: the daemon.json fragment listing vxnet's
// resolver first and the host's own name servers after it.
func dnsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "config" {
		fmt.Fprintln(stderr, "usage: vxnet dns config [--dns-addr ADDR] [--resolv-conf FILE]")
		return 2
	}
	fs := flag.NewFlagSet("vxnet dns config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("dns-addr", defaultDNSAddr, "vxnet's resolver address (as given to vxnet serve)")
	resolv := fs.String("resolv-conf", "/etc/resolv.conf", "where the host's name servers are read")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	out, err := dnsConfig(*addr, *resolv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "vxnet dns config:", err)
		return 1
	}
	fmt.Fprintln(stdout, out)
	return 0
}

// dnsConfig renders {"dns": [addr, upstreams...]}. Loopback servers are
// left out (containers cannot reach the host's loopback); when that
// leaves none, systemd-resolved's upstream list is tried, as dockerd does.
func dnsConfig(addr, resolvConf string, warn io.Writer) (string, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", fmt.Errorf("--dns-addr %q is not an IP address", addr)
	}
	ups, err := hostUpstreams(resolvConf)
	if err != nil {
		return "", err
	}
	if len(ups) == 0 {
		fmt.Fprintf(warn, "vxnet dns config: %s lists no non-loopback name server: add your upstream servers after %s\n", resolvConf, a)
	}
	b, err := json.MarshalIndent(map[string][]string{"dns": append([]string{a.String()}, ups...)}, "", "  ")
	return string(b), err
}

// hostUpstreams are the host's own name servers: resolvConf's, else (for
// the host's /etc/resolv.conf listing only loopback servers)
// systemd-resolved's upstream list, as dockerd does.
func hostUpstreams(resolvConf string) ([]string, error) {
	ups, err := nameservers(resolvConf)
	if err != nil || len(ups) > 0 || resolvConf != "/etc/resolv.conf" {
		return ups, err
	}
	ups, err = nameservers("/run/systemd/resolve/resolv.conf")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return ups, err
}

// upstreams parses --dns-upstream, or reads the host's name servers when
// it is empty.
func upstreams(flagValue string) ([]netip.AddrPort, error) {
	if strings.TrimSpace(flagValue) != "" {
		return parseUpstreams(flagValue)
	}
	list, err := hostUpstreams("/etc/resolv.conf")
	if err != nil {
		return nil, err
	}
	return parseUpstreams(strings.Join(list, ","))
}

// parseUpstreams parses a comma-separated list of name server addresses.
func parseUpstreams(v string) ([]netip.AddrPort, error) {
	list := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	var out []netip.AddrPort
	for _, s := range list {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--dns-upstream: %q is not an IP address", s)
		}
		out = append(out, netip.AddrPortFrom(a, 53))
	}
	return out, nil
}

// nameservers lists the non-loopback name servers of a resolv.conf.
func nameservers(path string) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read name servers: %w", err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil && !a.IsLoopback() {
			out = append(out, a.String())
		}
	}
	return out, sc.Err()
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/cmd/vxnet/journal"
	"github.com/vxnet/vxnet/cmd/vxnet/server"
	"github.com/vxnet/vxnet/dockerapi"
	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/driver/liveness"
	"github.com/vxnet/vxnet/internal/pause"
	"github.com/vxnet/vxnet/ipam"
	"github.com/vxnet/vxnet/metrics"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
	"github.com/vxnet/vxnet/store/consul"
)

func serve(args []string) int {
	c, err := parseConfig(args, os.Getenv, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "vxnet serve:", err)
		return 2
	}
	log, err := newLogger(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vxnet serve:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runServe(ctx, c, log); err != nil {
		log.WithError(err).Error("vxnet serve failed")
		return 1
	}
	return 0
}

func newLogger(c *config) (*logrus.Entry, error) {
	l := logrus.New()
	lvl, err := logrus.ParseLevel(c.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", c.LogLevel, err)
	}
	l.SetLevel(lvl)
	if c.LogFormat == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	}
	l.SetOutput(os.Stderr)
	return logrus.NewEntry(l), nil
}

// openStore opens the store named by a URI.
func openStore(ctx context.Context, uri string) (store.Store, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("--store %q: %w", uri, err)
	}
	switch u.Scheme {
	case "bolt":
		if u.Host != "" || u.Path == "" {
			return nil, fmt.Errorf("--store %q: want bolt:///absolute/path/file.db", uri)
		}
		return bolt.Open(u.Path)
	case "consul":
		return consul.Open(ctx, uri)
	}
	return nil, fmt.Errorf("--store %q: unknown scheme %q (want bolt or consul)", uri, u.Scheme)
}

// openStoreWaiting is openStore for serve: a store that does not answer
// (Consul unreachable at boot, or from a host whose underlay has just come
// back, whose first packets fail with "no route to host") is tried again,
// after first and then up to most between tries, with a warning naming the
// cause, until it answers or ctx ends. Exiting would only have systemd or
// dockerd restart the plugin in a loop, and running containers do not need
// it meanwhile. Any other error (a malformed --store, a refused ACL) is
// returned at once.
func openStoreWaiting(ctx context.Context, uri string, log *logrus.Entry, first, most time.Duration) (store.Store, error) {
	wait := first
	for attempt := 1; ; attempt++ {
		st, err := openStore(ctx, uri)
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			if err == nil && attempt > 1 {
				log.WithField("attempts", attempt).Info("store answers: starting")
			}
			return st, err
		}
		log.WithError(err).WithField("attempt", attempt).Warnf("store unreachable at start; trying again in %s (running containers keep their network)", wait)
		if !pause.For(ctx, wait) {
			return nil, err
		}
		wait = min(2*wait, most)
	}
}

// multiHost tells whether the store named by uri is shared between hosts.
func multiHost(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && u.Scheme == "consul"
}

func runServe(ctx context.Context, c *config, log *logrus.Entry) error {
	ul, err := findUnderlay(c.AdvertiseAddr)
	if err != nil {
		return err
	}
	mtu := c.MTU
	if mtu == 0 {
		mtu = ul.overlayMTU()
	}
	if c.HostID, err = hostID(c, ul.Addr.String()); err != nil {
		return err
	}
	log = log.WithField("host", c.HostID)
	st, err := openStoreWaiting(ctx, c.Store, log, time.Second, 5*time.Second)
	if err != nil {
		return err
	}
	defer st.Close()
	dp, err := dataplane.New(dataplane.Options{NetnsDir: c.NetnsDir, SysctlDir: c.SysctlDir, Log: log})
	if err != nil {
		return err
	}
	var plane driver.Dataplane = dp
	var met *metrics.Metrics
	if c.MetricsAddr != "" {
		met = metrics.New(nil)
		st, plane = met.Store(st), met.Plane(dp)
		log.Logger.AddHook(met.LogHook())
		if err := serveMetrics(ctx, c.MetricsAddr, met, log); err != nil {
			return err
		}
	}
	if c.PprofAddr != "" {
		if err := servePprof(ctx, c.PprofAddr, log); err != nil {
			return err
		}
	}
	docker, err := dockerapi.New(c.DockerHost) // names and swarm read the local Docker API
	if err != nil {
		return err
	}
	nm := newNames(c, docker, log)
	a, err := startAgent(ctx, agentOptions{
		Store: st, Plane: plane, HostID: c.HostID, VTEP: ul.Addr, Port: c.VXLANPort, MTU: mtu,
		Scope: scope.Scope(c.Scope), MultiHost: multiHost(c.Store), Log: log, Met: met,
		ReconcileInterval: c.ReconcileInterval, HeartbeatInterval: c.HeartbeatInterval,
		DeadAfter: c.DeadAfter, ForgetAfter: c.ForgetAfter,
		Probe: func(ctx context.Context, a netip.Addr) bool { return liveness.Ping(ctx, a, probeTimeout) },
		Admit: swarmGuard(ctx, c, docker, st, log), OnEndpoints: nm.feed(),
	})
	if err != nil {
		return err
	}
	defer a.stop()
	drv, ip := a.drv, a.ip
	if err := nm.start(ctx, drv); err != nil {
		return err
	}
	jn, err := journal.Open(journalDir(c.NetnsDir), log)
	if err != nil {
		return err
	}
	srv := server.New(drv, ip, server.Options{Log: log, Journal: jn, Observe: met.ObserveCallback})
	// Removals cut short by a crash are done before Docker can send
	// anything new (a create Docker retries then comes after them).
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	if n, err := srv.Replay(rctx); err != nil || n > 0 {
		log.WithError(err).WithField("pending", n).Warn("journaled removals left for later: store unavailable")
	}
	cancel()
	releaseUnfinished(ctx, drv, ip, log)
	go replayLoop(ctx, srv, log)
	log.WithFields(logrus.Fields{"socket": c.Socket, "advertise": ul.Addr, "underlay": ul.Link, "mtu": mtu, "store": c.Store, "version": version}).Info("vxnet serving")
	return listenAndServe(ctx, c.Socket, srv)
}

// releaseUnfinished drops the pool memberships of network creates that
// died with the previous plugin (ipam.IPAM.ReleaseUnfinished); it must run
// before the socket listens.
func releaseUnfinished(ctx context.Context, drv *driver.Driver, ip *ipam.IPAM, log *logrus.Entry) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	used, err := drv.LocalPools(ctx)
	if err == nil {
		_, err = ip.ReleaseUnfinished(ctx, func(id string) bool { return used[id] })
	}
	if err != nil {
		log.WithError(err).Warn("pools of unfinished network creates not released; they stay until the subnet is used and removed again")
	}
}

// journalDir keeps the pending removals next to the namespaces, on the
// host's /run: /run/vxnet/pending for /run/vxnet/netns.
func journalDir(netnsDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(netnsDir)), "pending")
}

// replayEvery is how often removals journaled during a store outage are
// tried again.
const replayEvery = 2 * time.Second

func replayLoop(ctx context.Context, srv *server.Server, log *logrus.Entry) {
	every(ctx, replayEvery, func() {
		if _, err := srv.Replay(ctx); err != nil && ctx.Err() == nil {
			log.WithError(err).Error("replay of journaled removals failed")
		}
	})
}

// every runs fn every d until ctx ends; d 0 is never.
func every(ctx context.Context, d time.Duration, fn func()) {
	if d == 0 {
		return
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// probeTimeout bounds one ICMP probe of a silent host's underlay.
const probeTimeout = time.Second

// reconcile runs one reconcile and tells met (which may be nil).
func reconcile(ctx context.Context, drv *driver.Driver, ip *ipam.IPAM, met *metrics.Metrics) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// The IPAM's search of every pool for this host's lost releases runs
	// in the rounds the driver searches for its leftovers (driver/sweep.go).
	sweep, token := drv.SweepDue()
	err := drv.Reconcile(ctx)
	if err == nil && sweep {
		if _, err = ip.ReleaseLost(ctx, drv.LocalPools); err == nil {
			drv.SweepDone(token)
		}
	}
	met.Reconciled(err)
	return err
}

func reconcileLoop(ctx context.Context, drv *driver.Driver, ip *ipam.IPAM, met *metrics.Metrics, interval time.Duration, log *logrus.Entry) {
	every(ctx, interval, func() {
		if err := reconcile(ctx, drv, ip, met); err != nil && ctx.Err() == nil {
			log.WithError(err).Error("reconcile failed")
		}
	})
}

// serveMetrics serves met's /metrics and /healthz on addr until ctx ends;
// the address is taken before serve goes on, so a busy port fails at start.
func serveMetrics(ctx context.Context, addr string, met *metrics.Metrics, log *logrus.Entry) error {
	return serveTCP(ctx, "--metrics-addr", addr, met.Handler(), log.WithField("serves", "/metrics and /healthz"))
}

// serveTCP serves h on addr (the value of flag) until ctx ends.
func serveTCP(ctx context.Context, flag, addr string, h http.Handler, log *logrus.Entry) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Errorf("server of %s stopped", flag)
		}
	}()
	log.WithField("addr", l.Addr().String()).Info("serving HTTP")
	return nil
}

// listenAndServe serves h on a unix socket readable by root only, until
// ctx ends; the socket file is removed on the way out. Kernel state stays,
// so containers keep their traffic while the plugin is down.
func listenAndServe(ctx context.Context, path string, h http.Handler) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %q: %w", path, err)
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("listen on %q: %w", path, err)
	}
	defer os.Remove(path)
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("chmod socket %q: %w", path, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

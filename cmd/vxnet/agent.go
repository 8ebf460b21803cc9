package main

import (
	"context"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/driver/liveness"
	"github.com/vxnet/vxnet/ipam"
	"github.com/vxnet/vxnet/metrics"
	"github.com/vxnet/vxnet/scope"
	"github.com/vxnet/vxnet/store"
)

// agent is one host's cluster side: its IPAM and driver on a store and a
// data plane, the reconcile loop and the liveness monitor. `vxnet serve`
// runs one on the kernel and serves Docker's callbacks on it; `vxnet
// simulate` runs many on a recording data plane. Nothing else differs.
type agent struct {
	drv       *driver.Driver
	ip        *ipam.IPAM
	stopLive  context.CancelFunc
	livenessC chan struct{}
}

// agentOptions configure an agent; Met may be nil.
type agentOptions struct {
	Store     store.Store
	Plane     driver.Dataplane
	HostID    string
	VTEP      netip.Addr
	Port, MTU int
	Scope     scope.Scope
	MultiHost bool
	Log       *logrus.Entry
	Met       *metrics.Metrics

	ReconcileInterval, HeartbeatInterval, DeadAfter, ForgetAfter time.Duration
	// Probe tells whether a silent host's VTEP answers (liveness.Ping on
	// the kernel).
	Probe func(ctx context.Context, a netip.Addr) bool
	// Admit may refuse an endpoint (driver.Options.Admit); nil admits all.
	Admit func(ctx context.Context, dockerNet string, addrs []netip.Prefix) error
	// OnEndpoints is told each network's endpoint records
	// (driver.Options.OnEndpoints: the names); nil for none.
	OnEndpoints func(network string, eps []driver.Endpoint)
}

// sweepEvery is how often, besides at start and after each network
// create or remove, reconcile searches the whole cluster for what this
// host's operations cut short left behind (driver/sweep.go): every round
// on every host those searches grew with the cluster.
const sweepEvery = time.Minute

// startAgent builds the agent, reconciles once and starts its loops, which
// run until ctx ends; stop waits for them.
func startAgent(ctx context.Context, o agentOptions) (*agent, error) {
	ip := ipam.New(ipam.Options{Store: o.Store, HostID: o.HostID, Scope: o.Scope, Log: o.Log})
	drv, err := driver.New(driver.Options{
		Store: o.Store, Plane: o.Plane, HostID: o.HostID, VTEP: o.VTEP,
		Port: o.Port, MTU: o.MTU, Scope: o.Scope, MultiHost: o.MultiHost, Log: o.Log,
		Pools: ip, Admit: o.Admit, OnEndpoints: o.OnEndpoints,
		ObserveLag: o.Met.ObservePropagation, SweepEvery: sweepEvery,
	})
	if err != nil {
		return nil, err
	}
	if err := reconcile(ctx, drv, ip, o.Met); err != nil {
		o.Log.WithError(err).Error("reconcile at start found problems; serving anyway")
	}
	go reconcileLoop(ctx, drv, ip, o.Met, o.ReconcileInterval, o.Log)
	live, stopLive := context.WithCancel(ctx)
	a := &agent{drv: drv, ip: ip, stopLive: stopLive, livenessC: make(chan struct{})}
	go func() {
		defer close(a.livenessC)
		liveness.Run(live, liveness.Options{
			Store: o.Store, HostID: o.HostID, Interval: o.HeartbeatInterval, DeadAfter: o.DeadAfter,
			ForgetAfter: o.ForgetAfter, Peers: drv, Log: o.Log, Probe: o.Probe, VTEPs: vtepsOf(o.VTEP),
			OnForget: func(ctx context.Context, host string) error {
				_, err := forgetHost(ctx, o.Store, ip, host)
				return err
			},
			Report: o.Met.ReportHosts,
		})
	}()
	return a, nil
}

// stop ends the liveness monitor (its heartbeat key goes while the store
// is still open) and the driver's peer goroutines.
func (a *agent) stop() {
	a.stopLive()
	<-a.livenessC
	a.drv.Close()
}

// vtepsOf is the host's VTEP as a list, none if unset.
func vtepsOf(a netip.Addr) []netip.Addr {
	if !a.IsValid() {
		return nil
	}
	return []netip.Addr{a}
}

package server

import (
	"context"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
)

// begin writes ahead, in Options.Journal, the removal a callback's
// request needs, and returns what to do with it once the call answered
// (journal.Journal.Begin).
func (s *Server) begin(req any, log *logrus.Entry) func(error) {
	if s.o.Journal == nil {
		return func(error) {}
	}
	return s.o.Journal.Begin(req, log)
}

// Replay sends every removal pending in Options.Journal again, oldest
// first, and returns how many are still pending
// (journal.Journal.Replay).
func (s *Server) Replay(ctx context.Context) (int, error) {
	if s.o.Journal == nil {
		return 0, nil
	}
	return s.o.Journal.Replay(ctx, removals{s})
}

// removals are the driver's and the IPAM's removals as the journal
// replays them: under the callbacks' deadline, panic guard and Observe,
// and not written ahead again (the journal keeps the entry until the
// replay succeeds).
type removals struct{ s *Server }

func (r removals) DeleteNetwork(ctx context.Context, req *network.DeleteNetworkRequest) error {
	return guarded(r.s, ctx, "NetworkDriver.DeleteNetwork", req, r.s.nd.DeleteNetwork)
}

func (r removals) DeleteEndpoint(ctx context.Context, req *network.DeleteEndpointRequest) error {
	return guarded(r.s, ctx, "NetworkDriver.DeleteEndpoint", req, r.s.nd.DeleteEndpoint)
}

func (r removals) ReleaseAddress(ctx context.Context, req *ipamapi.ReleaseAddressRequest) error {
	return guarded(r.s, ctx, "IpamDriver.ReleaseAddress", req, r.s.id.ReleaseAddress)
}

func (r removals) ReleasePool(ctx context.Context, req *ipamapi.ReleasePoolRequest) error {
	return guarded(r.s, ctx, "IpamDriver.ReleasePool", req, r.s.id.ReleasePool)
}

// guarded runs fn as a callback runs: with the deadline and panic guard
// of run, reported to Options.Observe.
func guarded[Req any](s *Server, ctx context.Context, name string, req *Req, fn func(context.Context, *Req) error) error {
	start := time.Now()
	_, err := run(s, ctx, name, req, errOnly(fn))
	s.observe(name, result(err), start)
	if err != nil {
		s.o.Log.WithField("call", name).WithError(err).WithField("took", time.Since(start)).Debug("replayed call failed")
	}
	return err
}

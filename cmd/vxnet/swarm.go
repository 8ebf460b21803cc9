package main

import (
	"context"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/dockerapi"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/swarm"
)

// swarmGuard, in global scope, starts the swarm census (it ends with ctx)
// and returns the check that refuses tasks of VIP-mode services (package
// swarm); in local scope there is no swarm, and it returns nil.
func swarmGuard(ctx context.Context, c *config, docker *dockerapi.Client, st store.Store, log *logrus.Entry) func(context.Context, string, []netip.Prefix) error {
	if c.Scope != "global" {
		return nil
	}
	dk := swarm.NewDocker(docker)
	census := &swarm.Census{Store: st, Docker: dk, Log: log}
	go census.Run(ctx)
	g := &swarm.Guard{Store: st, Docker: dk, Log: log}
	return g.Admit
}

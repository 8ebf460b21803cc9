// Package swarm makes a swarm service in VIP endpoint mode on a vxnet
// network fail visibly instead of hanging.
//
// Why: swarm balances a service's virtual IP (IPVS in a load-balancer
// sandbox per network) only on networks of its own overlay driver; the
// swarm manager gives those sandboxes no address on a remote driver's
// network. A VIP service on a vxnet network gets its VIP from vxnet's IPAM
// and its name resolves to it, but nothing answers there: every connection
// to the service name times out. The IPAM cannot tell a VIP request from a
// task's (the manager asks both the same way), so the refusal is made
// where a task's endpoint is created, and shows in `docker service ps
// --no-trunc` and in `docker service create`'s progress.
//
// How: Census runs on every node; on a manager it copies each service's
// endpoint mode and networks from the Docker API to the store
// (swarm/services/<service id> → Record), and removes the records of
// services that are gone. Guard runs in CreateEndpoint on every node: it
// finds the task container being started (the local Docker API's container
// list, by network and address), reads its service's record (waiting a
// little for a manager to write it), and refuses an endpoint of a VIP
// service with an error naming `--endpoint-mode dnsrr`.
//
// Invariant: a record exists only for a service the swarm has (each
// manager's census deletes the others), so the store holds no key once
// the services are removed.
package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// Endpoint modes of a swarm service.
const (
	ModeVIP   = "vip"
	ModeDNSRR = "dnsrr"
)

// Prefix is where the records are kept in the store.
const Prefix = keys.SwarmServices

// Record is the value of swarm/services/<service id>.
type Record struct {
	Name     string   `json:"name"`
	Mode     string   `json:"mode"`               // vip or dnsrr
	Networks []string `json:"networks,omitempty"` // swarm network IDs
}

// Key is the store key of a service's record.
func Key(serviceID string) string { return keys.SwarmService(serviceID) }

// Census keeps the store's records in step with the swarm's services.
type Census struct {
	Store    store.Store
	Docker   *Docker
	Interval time.Duration // between polls; 1 s when zero
	Log      *logrus.Entry
}

// Run polls until ctx ends. On a node that is not a manager it only asks
// whether it became one.
func (c *Census) Run(ctx context.Context) {
	every := c.Interval
	if every <= 0 {
		every = time.Second
	}
	var lastErr string // logged once until it changes
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := c.Sync(ctx)
		if ctx.Err() != nil {
			return
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != lastErr {
			if err != nil {
				c.Log.WithError(err).Warn("swarm census: service endpoint modes not updated")
			} else {
				c.Log.Info("swarm census: service endpoint modes updated again")
			}
			lastErr = msg
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync does one poll: on a manager, writes the records that changed and
// deletes those of services that are gone.
func (c *Census) Sync(ctx context.Context) error {
	mgr, err := c.Docker.IsManager(ctx)
	if err != nil || !mgr {
		return err
	}
	services, err := c.Docker.Services(ctx)
	if err != nil {
		return err
	}
	kvs, _, err := c.Store.List(ctx, Prefix)
	if err != nil {
		return err
	}
	have := map[string][]byte{}
	for _, kv := range kvs {
		have[strings.TrimPrefix(kv.Key, Prefix)] = kv.Value
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(services)) {
		b, err := json.Marshal(services[id])
		if err != nil {
			return err
		}
		if string(have[id]) == string(b) {
			continue
		}
		if _, err := c.Store.Put(ctx, Key(id), b); err != nil {
			errs = append(errs, err)
			continue
		}
		c.Log.WithFields(logrus.Fields{"service": services[id].Name, "mode": services[id].Mode}).Debug("swarm census: service recorded")
	}
	for id := range have {
		if _, ok := services[id]; ok {
			continue
		}
		if err := c.Store.Delete(ctx, Key(id)); err != nil {
			errs = append(errs, err)
			continue
		}
		c.Log.WithField("service", id).Debug("swarm census: record of a removed service deleted")
	}
	return errors.Join(errs...)
}

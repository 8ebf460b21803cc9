package names

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Driver is what the Syncer needs of vxnet's driver.
type Driver interface {
	// LocalNetworks maps this host's Docker network IDs of vxnet networks
	// to their cluster keys.
	LocalNetworks(ctx context.Context) (map[string]string, error)
	// SetNames writes the names of a local endpoint into its record and
	// tells whether the record holds them (false: no record yet).
	SetNames(ctx context.Context, dockerNet, endpoint string, names []string) (bool, error)
}

// SyncerOptions configure a Syncer.
type SyncerOptions struct {
	Docker  *Docker
	Driver  Driver
	Clients *Clients
	Log     *logrus.Entry
	// Every is the period of a full pass that also rewrites names already
	// written (a record re-published without them); MinGap bounds how
	// often events and unknown clients cause a pass.
	Every, MinGap time.Duration
	// Gateway is the network whose addresses queries come from.
	Gateway string
}

// Syncer copies the names of this host's containers on vxnet networks from
// the Docker API into their endpoint records, and keeps Clients current.
// It runs apart from the plugin callbacks: dockerd may be waiting for one
// while the Syncer waits for dockerd.
type Syncer struct {
	o       SyncerOptions
	kick    chan struct{}
	written map[string][]string // endpoint → names written since the last full pass
}

// NewSyncer returns a Syncer; call Run.
func NewSyncer(o SyncerOptions) *Syncer {
	if o.Gateway == "" {
		o.Gateway = "docker_gwbridge"
	}
	return &Syncer{o: o, kick: make(chan struct{}, 1), written: map[string][]string{}}
}

// Kick asks for a pass soon; it never blocks.
func (s *Syncer) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run passes at start, on Docker events, on Kick (at most every MinGap)
// and every Every, until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	go s.follow(ctx)
	tick := time.NewTicker(s.o.Every)
	defer tick.Stop()
	full, failing := true, false
	for {
		if full {
			clear(s.written)
		}
		err := s.pass(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing:
			s.o.Log.WithError(err).Warn("names: sync with the Docker API failed; retrying")
		case err == nil && failing:
			s.o.Log.Info("names: sync with the Docker API works again")
		}
		failing = err != nil
		gap := time.NewTimer(s.o.MinGap)
		select {
		case <-ctx.Done():
			gap.Stop()
			return
		case <-gap.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			full = false
		case <-tick.C:
			full = true
		}
	}
}

// follow kicks a pass for every relevant Docker event, reconnecting to the
// event stream when it breaks.
func (s *Syncer) follow(ctx context.Context) {
	failing := false
	for ctx.Err() == nil {
		err := s.o.Docker.Events(ctx, s.Kick)
		if err != nil && !failing {
			s.o.Log.WithError(err).Warn("names: Docker event stream lost; reconnecting (names still sync periodically)")
		}
		failing = err != nil
		s.Kick() // events may have been missed
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// pass writes the names of every local endpoint on a vxnet network and
// replaces Clients.
func (s *Syncer) pass(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	started := time.Now()
	nets, err := s.o.Driver.LocalNetworks(ctx)
	if err != nil {
		return err
	}
	byAddr := map[netip.Addr][]string{}
	byContainer := map[string][]string{}
	containers := map[string]*ContainerInfo{}
	var errs []error
	for id, key := range nets {
		n, err := s.o.Docker.Network(ctx, id)
		if errors.Is(err, errNotFound) {
			continue // removed meanwhile, or not yet Docker's
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for cid, ep := range n.Containers {
			c, err := s.container(ctx, containers, cid)
			if err != nil {
				if !errors.Is(err, errNotFound) {
					errs = append(errs, err)
				}
				continue
			}
			if err := s.write(ctx, id, ep.EndpointID, namesOn(c, id)); err != nil {
				errs = append(errs, err)
			}
			byContainer[cid] = append(byContainer[cid], key)
			for _, a := range []string{ep.IPv4Address, ep.IPv6Address} {
				if p, err := netip.ParsePrefix(a); err == nil {
					byAddr[p.Addr()] = append(byAddr[p.Addr()], key)
				}
			}
		}
	}
	watch, err := s.gateway(ctx, byContainer, byAddr)
	if err != nil {
		errs = append(errs, err)
	}
	if watch == nil && len(nets) > 0 {
		// No gateway network yet: the first container of a vxnet network
		// is about to make it, and its first query must wait for a pass.
		watch = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	s.o.Clients.Replace(byAddr, watch, started)
	return errors.Join(errs...)
}

// gateway adds the gateway-network addresses of the containers in
// byContainer to byAddr and returns that network's subnets.
func (s *Syncer) gateway(ctx context.Context, byContainer map[string][]string, byAddr map[netip.Addr][]string) ([]netip.Prefix, error) {
	gw, err := s.o.Docker.Network(ctx, s.o.Gateway)
	if errors.Is(err, errNotFound) {
		return nil, nil // no container needed one yet
	}
	if err != nil {
		return nil, err
	}
	for cid, ep := range gw.Containers {
		keys, ok := byContainer[cid]
		if !ok {
			continue
		}
		if p, err := netip.ParsePrefix(ep.IPv4Address); err == nil {
			byAddr[p.Addr()] = keys
		}
	}
	var watch []netip.Prefix
	for _, c := range gw.IPAM.Config {
		if p, err := netip.ParsePrefix(c.Subnet); err == nil {
			watch = append(watch, p)
		}
	}
	return watch, nil
}

func (s *Syncer) container(ctx context.Context, cache map[string]*ContainerInfo, id string) (*ContainerInfo, error) {
	if c, ok := cache[id]; ok {
		return c, nil
	}
	c, err := s.o.Docker.Container(ctx, id)
	if err != nil {
		return nil, err
	}
	cache[id] = c
	return c, nil
}

// write sets an endpoint's names unless this Syncer wrote the same since
// the last full pass.
func (s *Syncer) write(ctx context.Context, dockerNet, endpoint string, names []string) error {
	if endpoint == "" || len(names) == 0 {
		return nil
	}
	if w, ok := s.written[endpoint]; ok && slices.Equal(w, names) {
		return nil
	}
	ok, err := s.o.Driver.SetNames(ctx, dockerNet, endpoint, names)
	if err != nil || !ok {
		return err
	}
	s.written[endpoint] = names
	s.o.Log.WithFields(logrus.Fields{"endpoint": endpoint, "names": names}).Debug("names: endpoint names written")
	return nil
}

// namesOn lists the names container c has on Docker network id: its name,
// its aliases there and (Docker 26 on) its DNS names, sorted, without
// duplicates.
func namesOn(c *ContainerInfo, id string) []string {
	var out []string
	if n := strings.TrimPrefix(c.Name, "/"); n != "" {
		out = append(out, n)
	}
	for _, es := range c.NetworkSettings.Networks {
		if es.NetworkID != id {
			continue
		}
		out = append(out, es.Aliases...)
		out = append(out, es.DNSNames...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

package harness

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A Consul cluster as production runs it: three servers, each in a node
// namespace of its own (vxe2e-consul1..3 at 198.18.0.2..4, root ends
// vxe2e-cs1-veth..), started with -bootstrap-expect 3 and -retry-join of
// the three; and on every Docker host a client agent in the host's
// namespace, bound to the host's underlay address for gossip and serving
// HTTP on 127.0.0.1:8500 (and on the host's address, for the test
// process). A plugin given consul://127.0.0.1:8500 talks to its own agent,
// which forwards to whichever server leads, so losing any one server
// (the leader included) is a leader election, not a dead store.
const consulServers = 3

// ConsulCluster is the three servers and the client agents.
type ConsulCluster struct {
	Servers []*Consul
	Clients []*Consul // Clients[i] runs on Hosts[i]
}

// StartConsulCluster creates the three server nodes and the client agents
// and waits until every agent knows a leader. Teardown stops them and
// removes their namespaces, links and data. Without a Consul binary the
// test is skipped (failed when CI=true).
func (c *Cluster) StartConsulCluster(t testing.TB) *ConsulCluster {
	t.Helper()
	bin := requireConsul(t)
	cc := &ConsulCluster{}
	var joins []string
	for i := 1; i <= consulServers; i++ {
		joins = append(joins, fmt.Sprintf("198.18.0.%d", 1+i))
	}
	for i, ip := range joins {
		name := fmt.Sprintf("%s%d", consulName, i+1)
		cc.Servers = append(cc.Servers, &Consul{
			Name: name, IP: ip, bin: bin,
			logPath: filepath.Join(c.LogDir, name+".log"),
			netns:   "/run/netns/" + name, dir: "/var/lib/" + name,
			server: true, expect: consulServers, join: joins, clientIPs: []string{ip},
		})
	}
	for _, h := range c.Hosts {
		cc.Clients = append(cc.Clients, &Consul{
			Name: h.Name, IP: h.IP, bin: bin,
			logPath: filepath.Join(c.LogDir, h.Name+"-consul.log"),
			netns:   h.NetnsPath(), dir: filepath.Join("/var/lib", h.Name, "consul"),
			join: joins, clientIPs: []string{"127.0.0.1", h.IP},
		})
	}
	if !c.addConsul(append(append([]*Consul(nil), cc.Servers...), cc.Clients...)...) {
		t.Fatal("harness: a Consul was started already")
	}
	began := time.Now()
	for i, s := range cc.Servers {
		if err := createConsulNode(s.Name, fmt.Sprintf("%scs%d-veth", namePrefix, i+1), s.IP); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	if err := cc.StartServers(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := each(cc.Clients, (*Consul).start); err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Logf("harness: consul cluster up in %s: servers %s, a client agent on every host at 127.0.0.1:%s",
		time.Since(began).Round(time.Millisecond), strings.Join(joins, ", "), consulHTTPPort)
	return cc
}

// each runs f on every agent in parallel and joins the errors.
func each(agents []*Consul, f func(*Consul) error) error {
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(a)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StartServers starts every server that is not running and waits until
// each knows a leader (after a full stop that is a new election).
func (cc *ConsulCluster) StartServers() error {
	var down []*Consul
	for _, s := range cc.Servers {
		if !s.Running() {
			down = append(down, s)
		}
	}
	if err := each(down, (*Consul).launch); err != nil {
		return err
	}
	return each(cc.Servers, func(s *Consul) error { return s.waitLeader(consulReadyWait) })
}

// StopServers stops every server (SIGTERM) at once: the cluster is gone,
// the client agents stay.
func (cc *ConsulCluster) StopServers() error {
	return each(cc.Servers, (*Consul).Stop)
}

// Leader returns the server that leads, as the first answering server sees
// it, or an error while there is none. Followers name a dead leader until
// their election timeout: that is no leader either.
func (cc *ConsulCluster) Leader() (*Consul, error) {
	var errs []error
	for _, s := range cc.Servers {
		if !s.Running() {
			continue
		}
		l, err := cc.leaderOf(s)
		if err == nil {
			return l, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no server running"))
	}
	return nil, fmt.Errorf("consul leader: %w", errors.Join(errs...))
}

// leaderOf is the running server that s names as leader.
func (cc *ConsulCluster) leaderOf(s *Consul) (*Consul, error) {
	addr, err := s.Leader()
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("consul %s names leader %q", s.Name, addr)
	}
	for _, l := range cc.Servers {
		if l.IP != host {
			continue
		}
		if !l.Running() {
			return nil, fmt.Errorf("consul %s still names %s, which is down", s.Name, l.Name)
		}
		return l, nil
	}
	return nil, fmt.Errorf("consul %s names leader %q, not a server of the cluster", s.Name, addr)
}

// WaitLeader waits until a running server names a leader and returns it.
func (cc *ConsulCluster) WaitLeader(wait time.Duration) (*Consul, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := cc.Leader()
		if err == nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addr is the HTTP address of a running server (for reading keys).
func (cc *ConsulCluster) Addr() string {
	for _, s := range cc.Servers {
		if s.Running() {
			return s.Addr()
		}
	}
	return cc.Servers[0].Addr()
}

// Client is the client agent of a host.
func (cc *ConsulCluster) Client(h *Host) *Consul { return cc.Clients[h.Index-1] }

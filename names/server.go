package names

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"
)

// TTL of every answer: short, so a removed or moved container is not
// cached for long by Docker's resolver or the container's libc.
const TTL = 5

// Resolver answers A and AAAA queries for the names of the vxnet networks
// the querying container is on, and REFUSED for everything else such a
// container asks; queries of other clients go to Forward.
type Resolver struct {
	Table   *Table
	Clients *Clients
	Forward *Forwarder
	Log     *logrus.Entry
	// Timeout bounds the wait of one query for its client's refresh.
	Timeout time.Duration
}

// ServeDNS implements dns.Handler.
func (r *Resolver) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	resp := r.Answer(context.Background(), sourceOf(w.RemoteAddr()), w.RemoteAddr().Network(), q)
	if err := w.WriteMsg(resp); err != nil {
		r.Log.WithError(err).Debug("names: write answer")
	}
}

// Answer builds the reply to q from src over proto ("udp" or "tcp").
func (r *Resolver) Answer(ctx context.Context, src netip.Addr, proto string, q *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	if len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery {
		return resp.SetRcode(q, dns.RcodeRefused)
	}
	qq := q.Question[0]
	if len(r.networks(ctx, src)) == 0 {
		return r.Forward.Forward(ctx, q, proto)
	}
	if qq.Qclass != dns.ClassINET || (qq.Qtype != dns.TypeA && qq.Qtype != dns.TypeAAAA) {
		return resp.SetRcode(q, dns.RcodeRefused)
	}
	addrs, found := r.Table.Lookup(qq.Name, r.networks(ctx, src))
	if !found {
		return resp.SetRcode(q, dns.RcodeRefused)
	}
	resp.SetReply(q)
	resp.Authoritative = true
	hdr := dns.RR_Header{Name: qq.Name, Rrtype: qq.Qtype, Class: dns.ClassINET, Ttl: TTL}
	for _, a := range addrs {
		switch {
		case qq.Qtype == dns.TypeA && a.Is4():
			resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr, A: net.IP(a.AsSlice())})
		case qq.Qtype == dns.TypeAAAA && a.Is6() && !a.Is4In6():
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())})
		}
	}
	return resp
}

// networks are the vxnet networks of the container at src, waiting at most
// Timeout for a refresh of the clients.
func (r *Resolver) networks(ctx context.Context, src netip.Addr) []string {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	return r.Clients.Networks(ctx, src)
}

func sourceOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Serve answers on addr:53 over UDP and TCP until ctx ends. It returns
// once both listeners are bound, or the error of binding them.
func (r *Resolver) Serve(ctx context.Context, addr netip.Addr) error {
	hostPort := netip.AddrPortFrom(addr, 53).String()
	pc, err := net.ListenPacket("udp", hostPort)
	if err != nil {
		return fmt.Errorf("names: listen on udp %s: %w", hostPort, err)
	}
	l, err := net.Listen("tcp", hostPort)
	if err != nil {
		pc.Close()
		return fmt.Errorf("names: listen on tcp %s: %w", hostPort, err)
	}
	servers := []*dns.Server{
		{PacketConn: pc, Handler: r},
		{Listener: l, Handler: r, ReadTimeout: 5 * time.Second},
	}
	for _, s := range servers {
		go func() {
			if err := s.ActivateAndServe(); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				r.Log.WithError(err).Error("names: DNS server stopped")
			}
		}()
	}
	go func() {
		<-ctx.Done()
		for _, s := range servers {
			_ = s.Shutdown() // fails when it had not started yet: the closes below stop it
		}
		pc.Close()
		l.Close()
	}()
	return nil
}

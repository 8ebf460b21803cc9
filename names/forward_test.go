package names

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream serves h on a free UDP port of 127.0.0.1 for the test.
func upstream(t *testing.T, h dns.HandlerFunc) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

func rcodeServer(rcode int) dns.HandlerFunc {
	return func(w dns.ResponseWriter, q *dns.Msg) { _ = w.WriteMsg(new(dns.Msg).SetRcode(q, rcode)) }
}

// A client that is no vxnet container gets the host's name servers'
// answer, unchanged, as if it had asked them: the first one that neither
// refuses nor fails; a vxnet container asking an unknown name gets
// REFUSED (its Docker resolver moves on), never the upstream's answer.
func TestForwardStrangers(t *testing.T) {
	r, _ := fixture(t)
	refuser := upstream(t, rcodeServer(dns.RcodeRefused))
	nxdomain := upstream(t, rcodeServer(dns.RcodeNameError))
	answerer := upstream(t, func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg).SetReply(q)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP("198.18.0.99")}}
		_ = w.WriteMsg(m)
	})
	r.Forward = &Forwarder{Upstreams: []netip.AddrPort{refuser, answerer, nxdomain}, Timeout: time.Second}
	q := query("upstream.test", dns.TypeA)
	m := r.Answer(context.Background(), bridged, "udp", q)
	if m.Rcode != dns.RcodeSuccess || m.Id != q.Id || len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 300 {
		t.Fatalf("default-bridge client: %v; want the answerer's reply (TTL 300) with the query's id", m)
	}
	// vxnet names are not given to strangers: they are forwarded too.
	if m := r.Answer(context.Background(), bridged, "udp", query("test1", dns.TypeA)); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "198.18.0.99" {
		t.Errorf("stranger asking a vxnet name: %v; want the upstream's answer", m)
	}
	if m := r.Answer(context.Background(), client, "udp", query("upstream.test", dns.TypeA)); m.Rcode != dns.RcodeRefused {
		t.Errorf("vxnet container asking an unknown name: rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
	}
	r.Forward.Upstreams = []netip.AddrPort{refuser, nxdomain}
	if m := r.Answer(context.Background(), bridged, "udp", query("nosuch.test", dns.TypeA)); m.Rcode != dns.RcodeNameError {
		t.Errorf("NXDOMAIN upstream: rcode %s, want NXDOMAIN as the upstream said", dns.RcodeToString[m.Rcode])
	}
	r.Forward.Upstreams = []netip.AddrPort{refuser}
	if m := r.Answer(context.Background(), bridged, "udp", query("x.test", dns.TypeA)); m.Rcode != dns.RcodeRefused {
		t.Errorf("only a refusing upstream: rcode %s, want its REFUSED", dns.RcodeToString[m.Rcode])
	}
	dead := netip.MustParseAddrPort("127.0.0.1:9") // discard: nothing answers
	r.Forward = &Forwarder{Upstreams: []netip.AddrPort{dead}, Timeout: 100 * time.Millisecond}
	if m := r.Answer(context.Background(), bridged, "udp", query("x.test", dns.TypeA)); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("no upstream answering: rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

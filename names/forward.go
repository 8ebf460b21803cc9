package names

import (
	"context"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Forwarder relays the queries of clients that are not containers on a
// vxnet network to the host's own name servers, the ones dockerd lists
// after vxnet's. Default-bridge containers query vxnet's address directly,
// and not every resolver moves on to the next server on REFUSED (busybox
// nslookup, dig ask the first only), so they get what the next server
// says, unchanged. Queries that Docker's resolver forwards for a vxnet
// container get REFUSED instead: Docker moves on at once.
type Forwarder struct {
	Upstreams []netip.AddrPort
	Timeout   time.Duration // per upstream
}

// Forward asks each upstream in turn and returns the first answer that is
// neither SERVFAIL nor REFUSED (as Docker's resolver does), else the last
// one, else SERVFAIL; REFUSED when there is no upstream.
func (f *Forwarder) Forward(ctx context.Context, q *dns.Msg, proto string) *dns.Msg {
	if f == nil || len(f.Upstreams) == 0 {
		return new(dns.Msg).SetRcode(q, dns.RcodeRefused)
	}
	c := &dns.Client{Net: proto, Timeout: f.Timeout}
	var last *dns.Msg
	for _, u := range f.Upstreams {
		resp, _, err := c.ExchangeContext(ctx, q, u.String())
		if err != nil {
			continue
		}
		last = resp
		if resp.Rcode != dns.RcodeServerFailure && resp.Rcode != dns.RcodeRefused {
			return resp
		}
	}
	if last != nil {
		return last
	}
	return new(dns.Msg).SetRcode(q, dns.RcodeServerFailure)
}

package names

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"
)

var (
	t0      = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	gwNet   = netip.MustParsePrefix("172.18.0.0/16")
	client  = netip.MustParseAddr("172.18.0.5") // on prod and dev
	client2 = netip.MustParseAddr("172.18.0.6") // on dev only
	bridged = netip.MustParseAddr("172.17.0.9") // default bridge: not watched
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// fixture: prod holds test1 (host h1) and web with alias "api"; dev holds
// db and a dual-stack box; ops (no client is on it) holds secret.
func fixture(t *testing.T) (*Resolver, *atomic.Int32) {
	t.Helper()
	tbl := NewTable()
	tbl.Set("prod", []Record{
		{Endpoint: "e1", Host: "h1", Names: []string{"test1", "abc123"}, Addrs: addrs("198.19.2.10"), Created: t0},
		{Endpoint: "e2", Host: "h2", Names: []string{"Web", "api"}, Addrs: addrs("198.19.2.11"), Created: t0},
	})
	tbl.Set("dev", []Record{
		{Endpoint: "e3", Host: "h2", Names: []string{"db"}, Addrs: addrs("198.19.3.10"), Created: t0},
		{Endpoint: "e4", Host: "h1", Names: []string{"box"}, Addrs: addrs("198.19.3.11", "fd00::11"), Created: t0},
	})
	tbl.Set("ops", []Record{{Endpoint: "e5", Host: "h1", Names: []string{"secret"}, Addrs: addrs("198.19.4.10"), Created: t0}})
	var refreshes atomic.Int32
	cl := NewClients(func() { refreshes.Add(1) }, 50*time.Millisecond)
	cl.Replace(map[netip.Addr][]string{client: {"prod", "dev"}, client2: {"dev"}}, []netip.Prefix{gwNet}, time.Now())
	return &Resolver{Table: tbl, Clients: cl, Log: logrus.NewEntry(logrus.New())}, &refreshes
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return m
}

func answerAddrs(t *testing.T, m *dns.Msg) []string {
	t.Helper()
	var out []string
	for _, rr := range m.Answer {
		if rr.Header().Ttl != TTL {
			t.Errorf("%s: TTL %d, want %d", rr, rr.Header().Ttl, TTL)
		}
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

func TestAnswer(t *testing.T) {
	r, _ := fixture(t)
	cases := []struct {
		name  string
		src   netip.Addr
		q     *dns.Msg
		rcode int
		want  []string
	}{
		{"container name", client, query("test1", dns.TypeA), dns.RcodeSuccess, []string{"198.19.2.10"}},
		{"alias", client, query("api", dns.TypeA), dns.RcodeSuccess, []string{"198.19.2.11"}},
		{"case-insensitive both ways", client, query("WEB", dns.TypeA), dns.RcodeSuccess, []string{"198.19.2.11"}},
		{"second network of the client", client, query("db", dns.TypeA), dns.RcodeSuccess, []string{"198.19.3.10"}},
		{"AAAA", client, query("box", dns.TypeAAAA), dns.RcodeSuccess, []string{"fd00::11"}},
		{"A of a dual-stack name", client, query("box", dns.TypeA), dns.RcodeSuccess, []string{"198.19.3.11"}},
		{"AAAA of a v4-only name is empty, not refused", client, query("test1", dns.TypeAAAA), dns.RcodeSuccess, nil},
		{"name on a network the client is not on", client2, query("test1", dns.TypeA), dns.RcodeRefused, nil},
		{"name on no network of anyone's", client, query("secret", dns.TypeA), dns.RcodeRefused, nil},
		{"unknown name", client, query("example.com", dns.TypeA), dns.RcodeRefused, nil},
		{"name with a search domain", client, query("test1.example.com", dns.TypeA), dns.RcodeRefused, nil},
		{"other query type", client, query("test1", dns.TypeMX), dns.RcodeRefused, nil},
		{"default-bridge client, no upstream", bridged, query("test1", dns.TypeA), dns.RcodeRefused, nil},
		{"unknown client on the gateway network, no upstream", netip.MustParseAddr("172.18.0.77"), query("test1", dns.TypeA), dns.RcodeRefused, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := r.Answer(context.Background(), tc.src, "udp", tc.q)
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if m.Id != tc.q.Id || !m.Response {
				t.Errorf("reply id %d response %v, want id %d and a response", m.Id, m.Response, tc.q.Id)
			}
			if got := answerAddrs(t, m); !slices.Equal(got, tc.want) {
				t.Errorf("answers %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAnswerMalformed(t *testing.T) {
	r, _ := fixture(t)
	two := query("test1", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	update := query("test1", dns.TypeA)
	update.Opcode = dns.OpcodeUpdate
	chaos := query("test1", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	for name, q := range map[string]*dns.Msg{"two questions": two, "update": update, "class CHAOS": chaos} {
		if m := r.Answer(context.Background(), client, "udp", q); m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
			t.Errorf("%s: rcode %s with %d answers, want REFUSED and none", name, dns.RcodeToString[m.Rcode], len(m.Answer))
		}
	}
}

// The newest claimant of a name on a network wins (a container re-created
// on another host while the old record lingers); each network answers
// with its own claimant.
func TestConflictNewestWins(t *testing.T) {
	tbl := NewTable()
	old := Record{Endpoint: "old", Host: "h3", Names: []string{"test1"}, Addrs: addrs("198.19.2.30"), Created: t0}
	moved := Record{Endpoint: "new", Host: "h2", Names: []string{"test1"}, Addrs: addrs("198.19.2.31"), Created: t0.Add(time.Minute)}
	tbl.Set("prod", []Record{moved, old})
	if got, _ := tbl.Lookup("test1", []string{"prod"}); !slices.Equal(got, addrs("198.19.2.31")) {
		t.Errorf("newest claimant: got %v, want 198.19.2.31", got)
	}
	tbl.Set("prod", []Record{old, moved}) // order of the listing does not matter
	if got, _ := tbl.Lookup("test1", []string{"prod"}); !slices.Equal(got, addrs("198.19.2.31")) {
		t.Errorf("newest claimant, other order: got %v, want 198.19.2.31", got)
	}
	tie := Record{Endpoint: "tie", Host: "h9", Names: []string{"test1"}, Addrs: addrs("198.19.2.32"), Created: moved.Created}
	tbl.Set("prod", []Record{tie, moved, old})
	if got, _ := tbl.Lookup("test1", []string{"prod"}); !slices.Equal(got, addrs("198.19.2.32")) {
		t.Errorf("tie on time: got %v, want the higher host's 198.19.2.32", got)
	}
	tbl.Set("dev", []Record{{Endpoint: "d", Host: "h1", Names: []string{"test1"}, Addrs: addrs("198.19.3.5"), Created: t0}})
	if got, _ := tbl.Lookup("test1", []string{"prod", "dev"}); !slices.Equal(got, addrs("198.19.2.32", "198.19.3.5")) {
		t.Errorf("two networks: got %v, want one claimant of each", got)
	}
}

// A network's records are replaced as a whole: a removed endpoint's names
// go, and an empty listing (or the watcher's end) drops the network.
func TestTableReplace(t *testing.T) {
	tbl := NewTable()
	tbl.Set("prod", []Record{{Endpoint: "e1", Names: []string{"a"}, Addrs: addrs("198.19.2.1")}, {Endpoint: "e2", Names: []string{"b"}, Addrs: addrs("198.19.2.2")}})
	tbl.Set("prod", []Record{{Endpoint: "e2", Names: []string{"b"}, Addrs: addrs("198.19.2.2")}})
	if _, found := tbl.Lookup("a", []string{"prod"}); found {
		t.Error("name of a removed endpoint still found")
	}
	if _, found := tbl.Lookup("b", []string{"prod"}); !found {
		t.Error("name of a remaining endpoint not found")
	}
	tbl.Set("prod", nil)
	if _, found := tbl.Lookup("b", []string{"prod"}); found {
		t.Error("name found after its network was dropped")
	}
	if len(tbl.nets) != 0 {
		t.Errorf("table keeps %d networks after the last was dropped", len(tbl.nets))
	}
}

// An unknown source on the gateway network asks for one refresh and is
// answered once the refresh knows it; asking again before the next
// refresh costs nothing; default-bridge sources never ask.
func TestClientsRefreshOnMiss(t *testing.T) {
	r, refreshes := fixture(t)
	newcomer := netip.MustParseAddr("172.18.0.40")
	r.Clients.refresh = func() {
		refreshes.Add(1)
		go r.Clients.Replace(map[netip.Addr][]string{newcomer: {"prod"}}, []netip.Prefix{gwNet}, time.Now())
	}
	m := r.Answer(context.Background(), newcomer, "udp", query("test1", dns.TypeA))
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("newcomer: rcode %s, %d answers; want its refresh to let it resolve test1", dns.RcodeToString[m.Rcode], len(m.Answer))
	}
	stranger := netip.MustParseAddr("172.18.0.99")
	r.Clients.refresh = func() { refreshes.Add(1) } // a refresh that never comes
	refreshes.Store(0)
	start := time.Now()
	for range 5 {
		if m := r.Answer(context.Background(), stranger, "udp", query("test1", dns.TypeA)); m.Rcode != dns.RcodeRefused {
			t.Fatalf("stranger: rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
		}
	}
	if n := refreshes.Load(); n != 1 {
		t.Errorf("5 queries of a stranger asked for %d refreshes, want 1", n)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("5 queries of a stranger took %s; only the first may wait (50ms)", d)
	}
	refreshes.Store(0)
	for range 5 {
		r.Answer(context.Background(), bridged, "udp", query("test1", dns.TypeA))
	}
	if n := refreshes.Load(); n != 0 {
		t.Errorf("default-bridge queries asked for %d refreshes, want 0", n)
	}
}

// A pass that was under way when the query came (it started before) does
// not end the wait: the container may have started after it listed the
// gateway network; the pass the query asked for does.
func TestClientsWaitForAFreshPass(t *testing.T) {
	r, _ := fixture(t)
	r.Clients.wait = 5 * time.Second
	newcomer := netip.MustParseAddr("172.18.0.41")
	before := time.Now()
	r.Clients.refresh = func() {
		go func() {
			r.Clients.Replace(map[netip.Addr][]string{}, []netip.Prefix{gwNet}, before) // the pass under way
			time.Sleep(20 * time.Millisecond)
			r.Clients.Replace(map[netip.Addr][]string{newcomer: {"prod"}}, []netip.Prefix{gwNet}, time.Now())
		}()
	}
	if m := r.Answer(context.Background(), newcomer, "udp", query("test1", dns.TypeA)); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("newcomer: rcode %s, %d answers; want the fresh pass to let it resolve test1", dns.RcodeToString[m.Rcode], len(m.Answer))
	}
	stranger := netip.MustParseAddr("172.18.0.42")
	r.Clients.refresh = func() {
		go r.Clients.Replace(map[netip.Addr][]string{}, []netip.Prefix{gwNet}, time.Now())
	}
	start := time.Now()
	if m := r.Answer(context.Background(), stranger, "udp", query("test1", dns.TypeA)); m.Rcode != dns.RcodeRefused {
		t.Fatalf("stranger: rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a stranger waited %s: a fresh pass without it must end the wait", d)
	}
}

// namesOn reads names from both Docker versions' shapes: 20.10 lists the
// short ID among Aliases, 26.1 lists name, aliases and short ID in
// DNSNames; only the given network counts.
func TestNamesOn(t *testing.T) {
	var c ContainerInfo
	c.Name = "/test1"
	type es = struct {
		NetworkID  string
		EndpointID string
		Aliases    []string
		DNSNames   []string
	}
	c.NetworkSettings.Networks = map[string]es{
		"prod":  {NetworkID: "n1", Aliases: []string{"db", "abc123"}},
		"other": {NetworkID: "n2", Aliases: []string{"nope"}},
	}
	if got := namesOn(&c, "n1"); !slices.Equal(got, []string{"abc123", "db", "test1"}) {
		t.Errorf("20.10 shape: %v", got)
	}
	c.NetworkSettings.Networks = map[string]es{"prod": {NetworkID: "n1", Aliases: []string{"db"}, DNSNames: []string{"test1", "db", "abc123"}}}
	if got := namesOn(&c, "n1"); !slices.Equal(got, []string{"abc123", "db", "test1"}) {
		t.Errorf("26.1 shape: %v", got)
	}
}

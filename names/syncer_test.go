package names

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/dockerapi"
)

// fakeDocker serves the few Docker API reads the Syncer makes, in the
// shape dockerd 20.10 and 26.1 answer them.
func fakeDocker(t *testing.T, missing ...string) *Docker {
	t.Helper()
	pages := map[string]string{
		"/networks/net1": `{"Id":"net1","Name":"prod","Containers":{
			"c1":{"Name":"test1","EndpointID":"e1","IPv4Address":"198.19.2.10/24","IPv6Address":""}}}`,
		"/networks/docker_gwbridge": `{"Id":"gw","Name":"docker_gwbridge","IPAM":{"Config":[{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]},"Containers":{
			"c1":{"Name":"gateway_c1","EndpointID":"g1","IPv4Address":"172.18.0.5/16"},
			"c9":{"Name":"gateway_c9","EndpointID":"g9","IPv4Address":"172.18.0.9/16"}}}`,
		"/containers/c1/json": `{"Id":"c1","Name":"/test1","NetworkSettings":{"Networks":{
			"prod":{"NetworkID":"net1","EndpointID":"e1","Aliases":["web"],"DNSNames":["test1","web","c1"]}}}}`,
	}
	for _, m := range missing {
		delete(pages, m)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, ok := pages[r.URL.Path]
		if !ok {
			http.Error(w, `{"message":"No such object"}`, http.StatusNotFound)
			return
		}
		fmt.Fprint(w, page)
	}))
	t.Cleanup(srv.Close)
	api, err := dockerapi.New("tcp://" + strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return NewDocker(api)
}

type fakeDriver struct {
	nets     map[string]string
	sets     []string
	noRecord bool // SetNames finds no record
}

func (f *fakeDriver) LocalNetworks(context.Context) (map[string]string, error) { return f.nets, nil }
func (f *fakeDriver) SetNames(_ context.Context, net, ep string, names []string) (bool, error) {
	f.sets = append(f.sets, net+"/"+ep+"="+strings.Join(names, ","))
	return !f.noRecord, nil
}

// A pass writes each local endpoint's names once, maps the container's
// gateway and vxnet addresses to its networks, leaves other containers of
// the gateway network out, and skips networks Docker no longer has.
func TestSyncerPass(t *testing.T) {
	drv := &fakeDriver{nets: map[string]string{"net1": "prod", "net2": "gone-meanwhile"}}
	cl := NewClients(func() {}, 0)
	s := NewSyncer(SyncerOptions{Docker: fakeDocker(t), Driver: drv, Clients: cl, Log: logrus.NewEntry(logrus.New())})
	if err := s.pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"net1/e1=c1,test1,web"}; !slices.Equal(drv.sets, want) {
		t.Errorf("names written %v, want %v", drv.sets, want)
	}
	for a, want := range map[string][]string{"172.18.0.5": {"prod"}, "198.19.2.10": {"prod"}, "172.18.0.9": nil} {
		if got := cl.byAddr[netip.MustParseAddr(a)]; !slices.Equal(got, want) {
			t.Errorf("client %s: networks %v, want %v", a, got, want)
		}
	}
	if want := []netip.Prefix{netip.MustParsePrefix("172.18.0.0/16")}; !slices.Equal(cl.watch, want) {
		t.Errorf("watched subnets %v, want %v", cl.watch, want)
	}
	if err := s.pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(drv.sets) != 1 {
		t.Errorf("a second pass wrote unchanged names again: %v", drv.sets)
	}
}

// Names of an endpoint whose record is not there yet are tried again at
// the next pass, not taken as written.
func TestSyncerRetriesMissingRecord(t *testing.T) {
	drv := &fakeDriver{nets: map[string]string{"net1": "prod"}, noRecord: true}
	s := NewSyncer(SyncerOptions{Docker: fakeDocker(t), Driver: drv, Clients: NewClients(func() {}, 0), Log: logrus.NewEntry(logrus.New())})
	for range 2 {
		if err := s.pass(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(drv.sets) != 2 {
		t.Errorf("names of an endpoint without a record written %d times in 2 passes, want 2: %v", len(drv.sets), drv.sets)
	}
}

// Before Docker made its gateway network (the first container of a vxnet
// network on the host is starting), every unknown source waits for a
// pass; with no vxnet network here, none does.
func TestSyncerNoGatewayYet(t *testing.T) {
	for _, tc := range []struct {
		nets  map[string]string
		watch int
	}{{map[string]string{"net1": "prod"}, 2}, {map[string]string{}, 0}} {
		cl := NewClients(func() {}, 0)
		s := NewSyncer(SyncerOptions{Docker: fakeDocker(t, "/networks/docker_gwbridge"), Driver: &fakeDriver{nets: tc.nets}, Clients: cl, Log: logrus.NewEntry(logrus.New())})
		if err := s.pass(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(cl.watch) != tc.watch {
			t.Errorf("%d vxnet networks, no gateway network: watched %v, want %d prefixes", len(tc.nets), cl.watch, tc.watch)
		}
	}
}

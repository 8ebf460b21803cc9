package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
)

// fake records the removals it gets and fails those named in fail.
type fake struct {
	calls []string
	fail  map[string]error // by the removal's object: network, endpoint, address or pool ID
}

func (f *fake) do(what, id string) error {
	f.calls = append(f.calls, what+" "+id)
	return f.fail[id]
}
func (f *fake) DeleteNetwork(_ context.Context, r *network.DeleteNetworkRequest) error {
	return f.do("DeleteNetwork", r.NetworkID)
}
func (f *fake) DeleteEndpoint(_ context.Context, r *network.DeleteEndpointRequest) error {
	return f.do("DeleteEndpoint", r.NetworkID+"/"+r.EndpointID)
}
func (f *fake) ReleaseAddress(_ context.Context, r *ipamapi.ReleaseAddressRequest) error {
	return f.do("ReleaseAddress", r.PoolID+"/"+r.Address)
}
func (f *fake) ReleasePool(_ context.Context, r *ipamapi.ReleasePoolRequest) error {
	return f.do("ReleasePool", r.PoolID)
}

func open(t *testing.T) (*Journal, string) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	dir := t.TempDir()
	j, err := Open(dir, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	return j, dir
}

// plant writes an entry file as any vxnet version writes it, at.
func plant(t *testing.T, dir, name, path, body string, at time.Time) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"path": path, "body": json.RawMessage(body), "at": at})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func pending(t *testing.T, dir string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return len(files)
}

// Begin journals the removal that completes or undoes each request, and
// nothing for the others.
func TestBeginJournalsTheRemoval(t *testing.T) {
	for _, c := range []struct {
		name string
		req  any
		want string // the call Replay then makes; "" for none
	}{
		{"delete network", &network.DeleteNetworkRequest{NetworkID: "n1"}, "DeleteNetwork n1"},
		{"create network", &network.CreateNetworkRequest{NetworkID: "n1", Options: map[string]any{"x": "y"}}, "DeleteNetwork n1"},
		{"delete endpoint", &network.DeleteEndpointRequest{NetworkID: "n1", EndpointID: "e1"}, "DeleteEndpoint n1/e1"},
		{"create endpoint", &network.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1"}, "DeleteEndpoint n1/e1"},
		{"release address", &ipamapi.ReleaseAddressRequest{PoolID: "p", Address: "198.19.1.2"}, "ReleaseAddress p/198.19.1.2"},
		{"release pool", &ipamapi.ReleasePoolRequest{PoolID: "p"}, "ReleasePool p"},
		{"create without ID", &network.CreateNetworkRequest{}, ""},
		{"join", &network.JoinRequest{NetworkID: "n1", EndpointID: "e1"}, ""},
		{"request address", &ipamapi.RequestAddressRequest{PoolID: "p"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			j, dir := open(t)
			settle := j.Begin(c.req, j.log)
			settle(fmt.Errorf("write: %w", store.ErrUnavailable)) // keep it
			f := &fake{}
			if n, err := j.Replay(t.Context(), f); err != nil || n != 0 {
				t.Fatalf("replay: %d pending, %v", n, err)
			}
			var want []string
			if c.want != "" {
				want = []string{c.want}
			}
			if !reflect.DeepEqual(f.calls, want) {
				t.Fatalf("replayed %q, want %q", f.calls, want)
			}
			if n := pending(t, dir); n != 0 {
				t.Fatalf("%d entries left after a successful replay", n)
			}
		})
	}
}

// Begin's settle keeps the entry only for an Unavailable error.
func TestSettleKeepsOnlyUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		keep bool
	}{
		{nil, false},
		{fmt.Errorf("read: %w", store.ErrUnavailable), true},
		{fmt.Errorf("call: no answer within 10s: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("read: %w", store.ErrNotFound), false},
		{errkind.Errorf(errkind.BadRequest, "bad network ID"), false},
		{errkind.Errorf(errkind.Conflict, "held"), false},
		{context.Canceled, false},
	} {
		j, dir := open(t)
		j.Begin(&network.DeleteNetworkRequest{NetworkID: "n1"}, j.log)(c.err)
		if got := pending(t, dir) == 1; got != c.keep {
			t.Errorf("after %v (kind %s): kept %v, want %v", c.err, errkind.Of(c.err), got, c.keep)
		}
	}
}

// Replay goes oldest first, drops a removal that failed for good, and
// stops at the first one the store is unavailable for, keeping it and
// everything after it.
func TestReplayDecidesByKind(t *testing.T) {
	j, dir := open(t)
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	plant(t, dir, "a", deleteNetwork, `{"NetworkID":"gone"}`, t0)
	plant(t, dir, "b", releasePool, `{"PoolID":"bad"}`, t0.Add(1*time.Second))
	plant(t, dir, "c", deleteEndpoint, `{"NetworkID":"n1","EndpointID":"e1"}`, t0.Add(2*time.Second))
	plant(t, dir, "d", releaseAddress, `{"PoolID":"p","Address":"198.19.1.2"}`, t0.Add(3*time.Second))
	plant(t, dir, "e", deleteNetwork, `{"NetworkID":"down"}`, t0.Add(4*time.Second))
	plant(t, dir, "f", deleteNetwork, `{"NetworkID":"later"}`, t0.Add(5*time.Second))
	f := &fake{fail: map[string]error{
		"gone": fmt.Errorf("network %q: %w", "gone", store.ErrNotFound),
		"bad":  errkind.Errorf(errkind.BadRequest, "unknown pool ID %q", "bad"),
		"down": fmt.Errorf("look up network: %w", store.ErrUnavailable),
	}}
	n, err := j.Replay(t.Context(), f)
	if err != nil || n != 2 {
		t.Fatalf("replay: %d pending, %v; want 2 (down, later)", n, err)
	}
	want := []string{"DeleteNetwork gone", "ReleasePool bad", "DeleteEndpoint n1/e1", "ReleaseAddress p/198.19.1.2", "DeleteNetwork down"}
	if !reflect.DeepEqual(f.calls, want) {
		t.Fatalf("replayed %q, want %q", f.calls, want)
	}
	if got := pending(t, dir); got != 2 {
		t.Fatalf("%d entries pending, want 2", got)
	}
	delete(f.fail, "down")
	f.calls = nil
	if n, err := j.Replay(t.Context(), f); err != nil || n != 0 {
		t.Fatalf("replay with the store back: %d pending, %v", n, err)
	}
	if want := []string{"DeleteNetwork down", "DeleteNetwork later"}; !reflect.DeepEqual(f.calls, want) {
		t.Fatalf("replayed %q, want %q", f.calls, want)
	}
}

// A torn entry, a malformed request and an unknown removal are dropped
// without a call.
func TestReplayDropsBadEntries(t *testing.T) {
	j, dir := open(t)
	if err := os.WriteFile(filepath.Join(dir, "torn.json"), []byte(`{"path":"/Netw`), 0o600); err != nil {
		t.Fatal(err)
	}
	plant(t, dir, "malformed", deleteNetwork, `{"NetworkID":42}`, time.Now())
	plant(t, dir, "unknown", "/NetworkDriver.Leave", `{"NetworkID":"n1"}`, time.Now())
	f := &fake{}
	if n, err := j.Replay(t.Context(), f); err != nil || n != 0 || len(f.calls) != 0 {
		t.Fatalf("replay: %d pending, %v, calls %q; want none", n, err, f.calls)
	}
	if got := pending(t, dir); got != 0 {
		t.Fatalf("%d entries left", got)
	}
}

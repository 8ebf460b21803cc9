package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/errkind"
	"github.com/vxnet/vxnet/store"
)

// stub answers every call; CreateNetwork is steered by the network ID.
type stub struct{ calls atomic.Int32 }

func (s *stub) GetCapabilities(context.Context) (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: "local"}, nil
}
func (s *stub) CreateNetwork(ctx context.Context, r *network.CreateNetworkRequest) error {
	s.calls.Add(1)
	switch r.NetworkID {
	case "panic":
		panic("boom")
	case "slow":
		<-ctx.Done()
		return ctx.Err()
	case "late": // its last write landed just as the deadline fell
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		return nil
	case "lateconflict": // a CAS loop ended by the deadline
		<-ctx.Done()
		return errkind.Errorf(errkind.Conflict, "lost: %w", ctx.Err())
	case "stuck": // a kernel call that ignores the deadline
		<-ctx.Done()
		time.Sleep(lateGrace + time.Second)
		return nil
	case "fail":
		return errors.New(`network "fail" is bad`)
	case "badopt":
		return errkind.Errorf(errkind.BadRequest, `network "badopt": unknown option "x"`)
	case "taken":
		return errkind.Errorf(errkind.Conflict, `network "taken": subnet 198.19.1.0/24 overlaps 198.19.1.0/25`)
	case "gone":
		return fmt.Errorf(`network "gone": read: %w`, store.ErrNotFound)
	case "down":
		return fmt.Errorf(`network "down": read: %w`, store.ErrUnavailable)
	}
	return nil
}
func (s *stub) AllocateNetwork(context.Context, *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return &network.AllocateNetworkResponse{}, nil
}
func (s *stub) DeleteNetwork(context.Context, *network.DeleteNetworkRequest) error { return nil }
func (s *stub) FreeNetwork(context.Context, *network.FreeNetworkRequest) error     { return nil }
func (s *stub) CreateEndpoint(context.Context, *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	return &network.CreateEndpointResponse{}, nil
}
func (s *stub) DeleteEndpoint(context.Context, *network.DeleteEndpointRequest) error { return nil }
func (s *stub) EndpointInfo(context.Context, *network.InfoRequest) (*network.InfoResponse, error) {
	return nil, nil
}
func (s *stub) Join(context.Context, *network.JoinRequest) (*network.JoinResponse, error) {
	return &network.JoinResponse{InterfaceName: network.InterfaceName{SrcName: "vxc0", DstPrefix: "eth"}}, nil
}
func (s *stub) Leave(context.Context, *network.LeaveRequest) error                   { return nil }
func (s *stub) DiscoverNew(context.Context, *network.DiscoveryNotification) error    { return nil }
func (s *stub) DiscoverDelete(context.Context, *network.DiscoveryNotification) error { return nil }
func (s *stub) ProgramExternalConnectivity(context.Context, *network.ProgramExternalConnectivityRequest) error {
	return nil
}
func (s *stub) RevokeExternalConnectivity(context.Context, *network.RevokeExternalConnectivityRequest) error {
	return nil
}

type ipamStub struct{}

func (ipamStub) GetCapabilities(context.Context) (*ipamapi.CapabilitiesResponse, error) {
	return &ipamapi.CapabilitiesResponse{}, nil
}
func (ipamStub) GetDefaultAddressSpaces(context.Context) (*ipamapi.AddressSpacesResponse, error) {
	return &ipamapi.AddressSpacesResponse{LocalDefaultAddressSpace: "l", GlobalDefaultAddressSpace: "g"}, nil
}
func (ipamStub) RequestPool(_ context.Context, r *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error) {
	return &ipamapi.RequestPoolResponse{PoolID: "p", Pool: r.Pool}, nil
}
func (ipamStub) ReleasePool(context.Context, *ipamapi.ReleasePoolRequest) error { return nil }
func (ipamStub) RequestAddress(context.Context, *ipamapi.RequestAddressRequest) (*ipamapi.RequestAddressResponse, error) {
	return &ipamapi.RequestAddressResponse{Address: "198.19.1.2/24"}, nil
}
func (ipamStub) ReleaseAddress(context.Context, *ipamapi.ReleaseAddressRequest) error { return nil }

func newServer(t testing.TB, timeout time.Duration) (*Server, *stub) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	st := &stub{}
	return New(st, ipamStub{}, Options{Timeout: timeout, Log: logrus.NewEntry(l)}), st
}

func call(h http.Handler, method, path, body string) (int, map[string]any) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		return rec.Code, map[string]any{"_raw": rec.Body.String()}
	}
	return rec.Code, out
}

// A callback that succeeds just after its deadline is answered as the
// success it is: dockerd never removes what a call it was told failed
// made. One still busy lateGrace after the deadline is answered as a
// timeout then, not later.
func TestLateAnswers(t *testing.T) {
	s, _ := newServer(t, 200*time.Millisecond)
	if code, out := call(s, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"late"}`); code != 200 {
		t.Fatalf("a success 50 ms after the deadline was answered %d %v", code, out)
	}
	// An error after the deadline is a timeout (503: the journal keeps the
	// removal matching a create), whatever its kind.
	if code, out := call(s, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"lateconflict"}`); code != 503 {
		t.Fatalf("a conflict after the deadline was answered %d %v", code, out)
	}
	start := time.Now()
	code, out := call(s, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"stuck"}`)
	if msg, _ := out["Err"].(string); code != 503 || !strings.Contains(msg, "no answer within 200ms") {
		t.Fatalf("a callback stuck past the deadline was answered %d %v", code, out)
	}
	if took := time.Since(start); took < 200*time.Millisecond+lateGrace || took > 200*time.Millisecond+lateGrace+500*time.Millisecond {
		t.Fatalf("a stuck callback was answered after %s; want its deadline and lateGrace, %s", took, 200*time.Millisecond+lateGrace)
	}
}

func TestActivateListsBothDrivers(t *testing.T) {
	s, _ := newServer(t, time.Second)
	code, out := call(s, "POST", "/Plugin.Activate", "")
	impl, _ := json.Marshal(out["Implements"])
	if code != 200 || string(impl) != `["NetworkDriver","IpamDriver"]` {
		t.Fatalf("Activate = %d %v", code, out)
	}
}

// TestAnswers: each request gets Docker's answer (status and Err), the
// status chosen by the error's kind; a request the server refuses before
// decoding never reaches the driver, and one it decodes reaches it once.
func TestAnswers(t *testing.T) {
	s, st := newServer(t, 200*time.Millisecond)
	big := `{"NetworkID":"` + strings.Repeat("a", DefaultMaxBody) + `"}`
	for _, tt := range []struct {
		name, method, path, body string
		code                     int
		errHas                   string // "" = success
		calls                    int32  // CreateNetwork calls the driver gets
	}{
		{"ok", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"ok"}`, 200, "", 1},
		{"null body", "POST", "/NetworkDriver.GetCapabilities", "null", 200, "", 0},
		{"empty body", "POST", "/IpamDriver.GetDefaultAddressSpaces", "", 200, "", 0},
		{"driver error", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"fail"}`, 500, `network "fail" is bad`, 1},
		{"bad request kind", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"badopt"}`, 400, `unknown option "x"`, 1},
		{"conflict kind", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"taken"}`, 409, "overlaps", 1},
		{"not found kind is no 404", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"gone"}`, 500, `network "gone": read: not found`, 1},
		{"unavailable kind", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"down"}`, 503, "store unavailable", 1},
		{"truncated", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"ok"`, 400, "malformed request", 0},
		{"wrong type", "POST", "/IpamDriver.RequestPool", `{"Pool":42}`, 400, "malformed request", 0},
		{"trailing garbage", "POST", "/NetworkDriver.Join", `{} {}`, 400, "malformed request", 0},
		{"oversized", "POST", "/NetworkDriver.CreateNetwork", big, 400, "over 1048576 bytes", 0},
		{"empty create", "POST", "/NetworkDriver.CreateNetwork", "", 400, "empty request body", 0},
		{"unknown endpoint", "POST", "/NetworkDriver.Frobnicate", `{}`, 404, `unknown plugin endpoint "/NetworkDriver.Frobnicate"`, 0},
		{"wrong method", "GET", "/NetworkDriver.CreateNetwork", ``, 400, "method GET not allowed", 0},
		{"panic", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"panic"}`, 500, "internal error: boom", 1},
		{"timeout", "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"slow"}`, 503, "no answer within 200ms", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := st.calls.Load()
			code, out := call(s, tt.method, tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("status %d, want %d (%v)", code, tt.code, out)
			}
			msg, hasErr := out["Err"].(string)
			if tt.errHas == "" && hasErr {
				t.Fatalf("unexpected error %q", msg)
			}
			if tt.errHas != "" && !strings.Contains(msg, tt.errHas) {
				t.Fatalf("Err = %q, want it to contain %q (%v)", msg, tt.errHas, out)
			}
			if got := st.calls.Load() - before; got != tt.calls {
				t.Fatalf("the driver got %d CreateNetwork calls, want %d", got, tt.calls)
			}
		})
	}
	// the server still serves after all of that
	before := st.calls.Load()
	if code, out := call(s, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"ok"}`); code != 200 || st.calls.Load() != before+1 {
		t.Fatalf("server broken after bad requests: %d %v, driver calls %d → %d", code, out, before, st.calls.Load())
	}
}

var paths = []string{
	"/Plugin.Activate", "/NetworkDriver.GetCapabilities", "/NetworkDriver.CreateNetwork", "/NetworkDriver.AllocateNetwork",
	"/NetworkDriver.DeleteNetwork", "/NetworkDriver.FreeNetwork", "/NetworkDriver.CreateEndpoint", "/NetworkDriver.DeleteEndpoint",
	"/NetworkDriver.EndpointOperInfo", "/NetworkDriver.Join", "/NetworkDriver.Leave", "/NetworkDriver.DiscoverNew",
	"/NetworkDriver.DiscoverDelete", "/NetworkDriver.ProgramExternalConnectivity", "/NetworkDriver.RevokeExternalConnectivity",
	"/IpamDriver.GetCapabilities", "/IpamDriver.GetDefaultAddressSpaces", "/IpamDriver.RequestPool", "/IpamDriver.ReleasePool",
	"/IpamDriver.RequestAddress", "/IpamDriver.ReleaseAddress", "/nope",
}

// FuzzDecoders: any body on any path gets a JSON answer; a non-200 answer
// always carries a non-empty Err.
func FuzzDecoders(f *testing.F) {
	for i := range paths {
		f.Add(uint8(i), `{"NetworkID":"ok","Options":{"com.docker.network.generic":{"a":"b"}}}`)
		f.Add(uint8(i), `{"PoolID":"p","Address":"198.19.1.2","Options":null}`)
		f.Add(uint8(i), `{"Interface":{"Address":1}}`)
		f.Add(uint8(i), `[`)
	}
	s, _ := newServer(f, time.Second)
	f.Fuzz(func(t *testing.T, p uint8, body string) {
		path := paths[int(p)%len(paths)]
		if strings.Contains(body, `"slow"`) {
			return // the timeout path is tested above, not worth a second per input
		}
		code, out := call(s, "POST", path, body)
		if _, raw := out["_raw"]; raw {
			t.Fatalf("%s %q: answer is not a JSON object: %v", path, body, out)
		}
		if msg, _ := out["Err"].(string); code != 200 && msg == "" {
			t.Fatalf("%s %q: status %d without Err: %v", path, body, code, out)
		}
	})
}

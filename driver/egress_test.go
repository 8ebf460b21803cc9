package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/vxnet/vxnet/driver/dataplane"
)

// TestOwnEgress: egress=own gives the data plane an egress, Join the
// gateway with Docker's gateway service off, and publishes the ports of
// ProgramExternalConnectivity (RevokeExternalConnectivity removes them);
// --internal keeps a network without egress, as by default.
func TestOwnEgress(t *testing.T) {
	ctx := context.Background()
	// A port map as dockerd 20.10 sends it for -p 18080:80.
	var portmap map[string]interface{}
	if err := json.Unmarshal([]byte(`{"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":18080,"HostPortEnd":18080}]}`), &portmap); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		internal bool
		egress   string
		own      bool
	}{
		{"own", false, EgressOwn, true},
		{"own internal", true, EgressOwn, false},
		{"gwbridge", false, EgressGwbridge, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := createReq(net1, "198.19.1.0/24", "198.19.1.1/24", map[string]interface{}{OptVNI: "300", OptEgress: tc.egress})
			r.Options[internalOption] = tc.internal
			if err := e.d.CreateNetwork(ctx, r); err != nil {
				t.Fatal(err)
			}
			if got := e.plane.nets[300].Egress; got != tc.own {
				t.Errorf("data plane egress %v, want %v", got, tc.own)
			}
			if _, err := e.d.CreateEndpoint(ctx, &network.CreateEndpointRequest{NetworkID: net1, EndpointID: ep1,
				Interface: &network.EndpointInterface{Address: "198.19.1.2/24"}}); err != nil {
				t.Fatal(err)
			}
			j, err := e.d.Join(ctx, &network.JoinRequest{NetworkID: net1, EndpointID: ep1})
			if err != nil {
				t.Fatal(err)
			}
			wantGW := map[bool]string{true: "198.19.1.1"}[tc.own]
			if j.Gateway != wantGW || j.DisableGatewayService != tc.own {
				t.Errorf("Join: gateway %q disable gateway service %v; want %q, %v", j.Gateway, j.DisableGatewayService, wantGW, tc.own)
			}
			if err := e.d.ProgramExternalConnectivity(ctx, &network.ProgramExternalConnectivityRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
				t.Errorf("ProgramExternalConnectivity without ports: %v", err)
			}
			if err := e.d.ProgramExternalConnectivity(ctx, &network.ProgramExternalConnectivityRequest{NetworkID: net1, EndpointID: ep1, Options: portmap}); err != nil {
				t.Errorf("ProgramExternalConnectivity with ports: %v", err)
			}
			want := map[bool]string{true: "[0.0.0.0:18080->80/tcp]", false: "[]"}[tc.own]
			if got := fmt.Sprint(e.plane.published[ep1]); got != want {
				t.Errorf("published %s, want %s", got, want)
			}
			if err := e.d.RevokeExternalConnectivity(ctx, &network.RevokeExternalConnectivityRequest{NetworkID: net1, EndpointID: ep1}); err != nil {
				t.Errorf("RevokeExternalConnectivity: %v", err)
			}
			if got := e.plane.published[ep1]; got != nil {
				t.Errorf("published after revoke: %v", got)
			}
		})
	}
}

func TestOwnEgressNeedsIPv4Gateway(t *testing.T) {
	e := newEnv(t)
	r := createReq(net1, "198.19.1.0/24", "", map[string]interface{}{OptEgress: EgressOwn})
	wantErr(t, e.d.CreateNetwork(context.Background(), r), "vxnet.egress=own needs an IPv4 subnet with a gateway")
	if len(e.keys()) != 0 || len(e.plane.nets) != 0 {
		t.Fatalf("refused create left store %v kernel %v", e.keys(), e.plane.nets)
	}
}

func TestEgressMismatchRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.CreateNetwork(ctx, createReq(net1, "198.19.1.0/24", "198.19.1.1/24", map[string]interface{}{OptEgress: EgressOwn})); err != nil {
		t.Fatal(err)
	}
	other := newHost(t, e.store, "h2", "198.18.0.12")
	wantErr(t, other.d.CreateNetwork(ctx, createReq(net2, "198.19.1.0/24", "198.19.1.1/24", nil)), `option vxnet.egress="gwbridge" differs from "own"`)
}

// TestParsePortMap: the port map as dockerd sends it (20.10: -p, -p with
// an address, a range, udp; -P and -p without host port have HostPort 0).
func TestParsePortMap(t *testing.T) {
	for _, tc := range []struct {
		json, want, err string
	}{
		{json: `null`, want: "[]"},
		{json: `[]`, want: "[]"},
		{json: `[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":18080,"HostPortEnd":18080}]`, want: "[{tcp invalid IP 18080 18080 80}]"},
		{json: `[{"Proto":17,"Port":53,"HostIP":"198.18.0.10","HostPort":5353}]`, want: "[{udp 198.18.0.10 5353 0 53}]"},
		{json: `[{"Proto":6,"Port":80,"HostIP":"0.0.0.0","HostPort":8000,"HostPortEnd":8010},{"Proto":6,"Port":81,"HostIP":"198.18.0.10","HostPort":8081}]`,
			want: "[{tcp invalid IP 8000 8010 80} {tcp 198.18.0.10 8081 0 81}]"},
		{json: `[{"Proto":6,"Port":80,"HostIP":"::","HostPort":80}]`, err: "publishes on IPv4 host addresses only, not ::"},
		{json: `[{"Proto":6,"Port":80,"HostPort":0}]`, err: "Docker does not show the host ports a network plugin chooses, so -P and -p without a host port are refused"},
		{json: `[{"Proto":132,"Port":80,"HostPort":80}]`, err: "publishes tcp and udp ports only, not 80/sctp"},
		{json: `[{"Proto":6,"Port":80,"HostIP":"2001:db8::1","HostPort":80}]`, err: "publishes on IPv4 host addresses only, not 2001:db8::1"},
		{json: `[{"Proto":6,"Port":80,"HostIP":"x","HostPort":80}]`, err: `host address "x"`},
		{json: `[{"Proto":6,"Port":80,"HostPort":90,"HostPortEnd":85}]`, err: "host port range 90-85 is empty"},
		{json: `{"Proto":6}`, err: "option com.docker.network.portmap"},
	} {
		var v interface{}
		if err := json.Unmarshal([]byte(tc.json), &v); err != nil {
			t.Fatal(err)
		}
		got, err := parsePortMap("n1", map[string]interface{}{portMapOption: v})
		if tc.err != "" {
			wantErr(t, err, tc.err)
			continue
		}
		if err != nil || fmt.Sprintf("%v", fmtBindings(got)) != tc.want {
			t.Errorf("parsePortMap(%s) = %v, %v; want %s", tc.json, fmtBindings(got), err, tc.want)
		}
	}
}

func fmtBindings(bs []dataplane.PortBinding) string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = fmt.Sprintf("{%s %v %d %d %d}", b.Proto, b.HostIP, b.HostPort, b.HostPortEnd, b.Port)
	}
	return "[" + strings.Join(out, " ") + "]"
}

package driver

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
)

// TestOwnEgress: egress=own gives the data plane an egress, Join the
// gateway with Docker's gateway service off, and refuses published ports;
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
			err = e.d.ProgramExternalConnectivity(ctx, &network.ProgramExternalConnectivityRequest{NetworkID: net1, EndpointID: ep1, Options: portmap})
			if tc.own {
				wantErr(t, err, "vxnet.egress=own, which does not publish ports")
			} else if err != nil {
				t.Errorf("ProgramExternalConnectivity with ports: %v", err)
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

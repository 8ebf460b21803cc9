package driver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
)

func TestParseNetworkOptions(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want NetworkOptions
		err  string
	}{
		{`{}`, NetworkOptions{}, ""},
		{`{"com.docker.network.enable_ipv6":false,"com.docker.network.internal":true}`, NetworkOptions{Internal: true}, ""},
		{`{"com.docker.network.generic":{"vxnet.vni":"42","com.docker.network.driver.mtu":"1400"}}`, NetworkOptions{VNI: 42, MTU: 1400}, ""},
		{`{"com.docker.network.generic":{"vxnet.vni":" 7 "}}`, NetworkOptions{VNI: 7}, ""},
		{`{"com.docker.network.generic":{"vxnet.vni":"0"}}`, NetworkOptions{}, "out of range"},
		{`{"com.docker.network.generic":{"vxnet.vni":"-1"}}`, NetworkOptions{}, "out of range"},
		{`{"com.docker.network.generic":{"com.docker.network.driver.mtu":"100"}}`, NetworkOptions{}, "out of range 576..65535"},
		{`{"com.docker.network.generic":{"vxnet.vni":"` + strings.Repeat("1", 65) + `"}}`, NetworkOptions{}, "too long"},
		{`{"com.docker.network.generic":"x"}`, NetworkOptions{}, "want an object of strings"},
		{`{"com.docker.network.internal":"maybe"}`, NetworkOptions{}, "com.docker.network.internal"},
		{`{"com.docker.network.generic":{"foo":"bar"}}`, NetworkOptions{}, `unknown option "foo"`},
		{`{"com.docker.network.generic":{"vxnet.egress":"own"}}`, NetworkOptions{Egress: EgressOwn}, ""},
		{`{"com.docker.network.generic":{"vxnet.egress":"gwbridge"}}`, NetworkOptions{}, ""},
		{`{"com.docker.network.generic":{"vxnet.egress":"nat"}}`, NetworkOptions{}, `option "vxnet.egress": unknown value "nat": want "gwbridge"`},
	} {
		var m map[string]interface{}
		if err := json.Unmarshal([]byte(tt.in), &m); err != nil {
			t.Fatal(err)
		}
		got, err := ParseNetworkOptions(m)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// FuzzCreateNetwork: any CreateNetwork body either fails leaving store and
// kernel untouched, or succeeds and DeleteNetwork then removes everything.
func FuzzCreateNetwork(f *testing.F) {
	for _, s := range []string{
		`{"NetworkID":"` + net1 + `","Options":{"com.docker.network.generic":{"vxnet.vni":"5"}},"IPv4Data":[{"Pool":"198.19.1.0/24","Gateway":"198.19.1.1/24"}]}`,
		`{"NetworkID":"` + net1 + `","IPv4Data":[{"Pool":"198.19.1.0/24"}],"IPv6Data":[{"Pool":"fd00::/64","Gateway":"fd00::1/64"}]}`,
		`{"NetworkID":"` + net1 + `","IPv4Data":[null]}`,
		`{"NetworkID":"` + net1 + `","Options":{"com.docker.network.internal":1}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r network.CreateNetworkRequest
		if json.Unmarshal([]byte(body), &r) != nil {
			return
		}
		e := newEnv(t)
		ctx := context.Background()
		if err := e.d.CreateNetwork(ctx, &r); err != nil {
			if len(e.keys()) != 0 || len(e.plane.nets) != 0 {
				t.Fatalf("failed create (%v) left store %v kernel %v", err, e.keys(), e.plane.nets)
			}
			return
		}
		if err := e.d.DeleteNetwork(ctx, &network.DeleteNetworkRequest{NetworkID: r.NetworkID}); err != nil {
			t.Fatal(err)
		}
		if len(e.keys()) != 0 || len(e.plane.nets) != 0 {
			t.Fatalf("delete left store %v kernel %v", e.keys(), e.plane.nets)
		}
	})
}

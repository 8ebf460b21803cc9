package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

type badInputReport struct {
	Requests  int            `json:"requests"`
	ByStatus  map[string]int `json:"by_status"`
	Unclear   int            `json:"answers_without_err"`
	MaxAnswer float64        `json:"max_answer_seconds"`
	Serving   bool           `json:"plugin_still_serving"`
	Restarted bool           `json:"plugin_exited"`
	Leaks     int            `json:"leaks"`
}

func (r *badInputReport) String() string {
	return fmt.Sprintf("5. bad input (socket): %d truncated, oversized, wrong-typed, unknown-endpoint and mangled requests: answers %v, %d without a clear Err, slowest %.3fs; plugin still serving %v, exited %v; leaks %d",
		r.Requests, r.ByStatus, r.Unclear, r.MaxAnswer, r.Serving, r.Restarted, r.Leaks)
}

// pluginPaths are every callback the plugin serves.
var pluginPaths = []string{
	"/NetworkDriver.GetCapabilities", "/NetworkDriver.CreateNetwork", "/NetworkDriver.AllocateNetwork",
	"/NetworkDriver.DeleteNetwork", "/NetworkDriver.FreeNetwork", "/NetworkDriver.CreateEndpoint",
	"/NetworkDriver.DeleteEndpoint", "/NetworkDriver.EndpointOperInfo", "/NetworkDriver.Join", "/NetworkDriver.Leave",
	"/NetworkDriver.DiscoverNew", "/NetworkDriver.DiscoverDelete", "/NetworkDriver.ProgramExternalConnectivity",
	"/NetworkDriver.RevokeExternalConnectivity", "/IpamDriver.GetCapabilities", "/IpamDriver.GetDefaultAddressSpaces",
	"/IpamDriver.RequestPool", "/IpamDriver.ReleasePool", "/IpamDriver.RequestAddress", "/IpamDriver.ReleaseAddress",
}

// validBody is a request of every kind, to be mangled: its fields have the
// right types, but the IDs and the pool are invalid, so a mangled body that
// still decodes cannot create anything.
const validBody = `{"NetworkID":"0123456789ab-no-hex","EndpointID":"0123456789ab-no-hex","PoolID":"198.19.20.0_24",` +
	`"Pool":"198.19.20.1/24","Address":"198.19.20.5","Options":{"com.docker.network.generic":{"vxnet.vni":"5000"}},` +
	`"IPv4Data":[{"AddressSpace":"vxnet-local","Pool":"198.19.20.0/24","Gateway":"198.19.20.1/24"}],` +
	`"Interface":{"Address":"198.19.20.5/24","MacAddress":"02:42:c6:13:14:05"},"SandboxKey":"/var/run/docker/netns/x"}`

// wrongTyped replaces the value of one field with a value of another type.
var valueRE = regexp.MustCompile(`"([A-Za-z4]+)":("[^"]*"|\{[^{}]*\}|\[[^\[\]]*\])`)

// badReq is one request; mustFail is false only for a body that is valid
// JSON, which an endpoint that ignores the fields it does not have may
// answer with success.
type badReq struct {
	method, path, body string
	mustFail           bool
}

// badRequests are the fixed cases and n mangled ones: truncated, over
// 1 MiB, wrong-typed, unknown endpoints, wrong methods.
func badRequests(f *faults, n int) []badReq {
	type req = badReq
	var out []req
	big := `{"NetworkID":"` + strings.Repeat("a", 2<<20) + `"}`
	for _, p := range pluginPaths {
		out = append(out,
			req{"POST", p, validBody[:1+len(p)%(len(validBody)-2)], true}, // truncated
			req{"POST", p, big, true},                                     // over 1 MiB
			req{"POST", p, `{"NetworkID":1,"PoolID":[],"Pool":{},"EndpointID":true,"Interface":"x","Options":7}`, false},
			req{"POST", p, `[`, true},
			req{"GET", p, "", true},
		)
	}
	out = append(out, req{"POST", "/NetworkDriver.Bogus", "{}", true}, req{"POST", "/", "{}", true}, req{"POST", "/IpamDriver.Nope", validBody, true})
	matches := valueRE.FindAllStringSubmatchIndex(validBody, -1)
	wrong := []string{"1", "[]", "{}", "true", `"x"`, "null", "-1e999"}
	for range n {
		p := pluginPaths[f.rnd.IntN(len(pluginPaths))]
		b := []byte(validBody)
		switch f.rnd.IntN(3) {
		case 0: // truncate
			b = b[:f.rnd.IntN(len(b)-1)]
		case 1: // flip bytes until it no longer parses
			for json.Valid(b) {
				b[f.rnd.IntN(len(b))] = byte(f.rnd.IntN(256))
			}
		case 2: // one field of the wrong type
			m := matches[f.rnd.IntN(len(matches))]
			v := wrong[f.rnd.IntN(len(wrong))]
			if v == "null" || (v == "{}" && validBody[m[4]] == '{') || (v == "[]" && validBody[m[4]] == '[') {
				v = "7"
			}
			b = []byte(validBody[:m[4]] + v + validBody[m[5]:])
		}
		out = append(out, req{"POST", p, string(b), !json.Valid(b) && len(b) > 0})
	}
	return out
}

// rawCall sends any method and body to the plugin.
func (p *plugin) rawCall(method, path, body string) (int, string, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", p.socket())
		}}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://plugin"+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// testFaultBadInput sends malformed requests of every kind to every
// endpoint of a plugin on the Consul store: each gets an error answer in
// Docker's form, the plugin keeps serving, and nothing is left behind.
func testFaultBadInput(t *testing.T, f *faults) {
	p := f.plugins[0]
	r := &badInputReport{ByStatus: map[string]int{}}
	f.mu.Lock()
	f.report.BadInput = r
	f.mu.Unlock()
	errForm := regexp.MustCompile(`^\{"Err":".+"\}$`)
	for _, q := range badRequests(f, f.cfg.BadInputRandom) {
		start := time.Now()
		code, body, err := p.rawCall(q.method, q.path, q.body)
		r.MaxAnswer = max(r.MaxAnswer, secs(time.Since(start)))
		r.Requests++
		if err != nil {
			r.ByStatus["transport error"]++
			t.Errorf("%s %s %.80q: %v", q.method, q.path, q.body, err)
			continue
		}
		r.ByStatus[fmt.Sprint(code)]++
		if !json.Valid([]byte(body)) || (code != 200 || q.mustFail) && (code == 200 || !errForm.MatchString(body)) {
			r.Unclear++
			t.Errorf("%s %s %.80q: %d %.200s, want an error in Docker's form", q.method, q.path, q.body, code, body)
		}
	}
	code, _, err := p.call("/Plugin.Activate", "")
	r.Serving = err == nil && code == 200
	r.Restarted = p.proc.Exited()
	if !r.Serving || r.Restarted {
		t.Errorf("plugin after bad input: Activate %d %v, exited %v", code, err, r.Restarted)
	}
	if _, err := f.lc.Wait(10 * time.Second); err != nil {
		r.Leaks++
		t.Errorf("after bad input: %v", err)
	}
	t.Log(r)
}

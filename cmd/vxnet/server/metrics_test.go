package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/metrics"
)

// TestCallbackMetrics drives callbacks through the server and scrapes:
// each lands in the histogram under its name and result.
func TestCallbackMetrics(t *testing.T) {
	m := metrics.New(nil)
	l := logrus.New()
	l.SetOutput(io.Discard)
	srv := New(&stub{}, ipamStub{}, Options{Timeout: 200 * time.Millisecond, Log: logrus.NewEntry(l), Observe: m.ObserveCallback})
	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"n1"}`, 200},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"n2"}`, 200},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"fail"}`, 500},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"slow"}`, 503},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"badopt"}`, 400},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":`, 400},
		{"/IpamDriver.RequestPool", `{"Pool":"198.19.1.0/24"}`, 200},
	} {
		if code, resp := call(srv, http.MethodPost, c.path, c.body); code != c.code {
			t.Fatalf("%s %s: %d %v, want %d", c.path, c.body, code, resp, c.code)
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`vxnet_callback_duration_seconds_count{call="NetworkDriver.CreateNetwork",result="ok"} 2`,
		`vxnet_callback_duration_seconds_count{call="NetworkDriver.CreateNetwork",result="error"} 1`,
		`vxnet_callback_duration_seconds_count{call="NetworkDriver.CreateNetwork",result="timeout"} 1`,
		`vxnet_callback_duration_seconds_count{call="NetworkDriver.CreateNetwork",result="bad_request"} 2`,
		`vxnet_callback_duration_seconds_count{call="IpamDriver.RequestPool",result="ok"} 1`,
		`vxnet_callback_duration_seconds_bucket{call="NetworkDriver.CreateNetwork",result="timeout",le="0.1"} 0`,
		`vxnet_callback_duration_seconds_bucket{call="NetworkDriver.CreateNetwork",result="timeout",le="0.25"} 1`,
	} {
		if !strings.Contains(text, "\n"+want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

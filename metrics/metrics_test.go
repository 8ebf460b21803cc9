package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/driver/dataplane"
	"github.com/vxnet/vxnet/driver/liveness"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/bolt"
)

// scrape returns the /metrics text, or the /healthz status and body.
func scrape(t *testing.T, m *Metrics, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func hasLine(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
}

// fakePlane has two networks with one and two endpoints.
type fakePlane struct {
	driver.Dataplane // nil: the methods not overridden are never called
	fail             bool
}

func (fakePlane) Networks() ([]uint32, error) { return []uint32{7, 8}, nil }
func (fakePlane) Endpoints(vni uint32) ([]string, error) {
	return []string{"a", "b"}[:vni-6], nil
}
func (p *fakePlane) SetPeers(uint32, []dataplane.Peer) error {
	if p.fail {
		return errors.New("netlink says no")
	}
	return nil
}
func (fakePlane) DeleteNetwork(uint32) error { return nil }

func TestMetricsMove(t *testing.T) {
	now := time.Now()
	m := New(func() time.Time { return now })
	if code, body := scrape(t, m, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no store call has succeeded yet") {
		t.Errorf("healthz before anything: %d %q", code, body)
	}
	b, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	st := m.Store(b)
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CAS(ctx, "k", []byte("w"), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatal(err)
	}
	if code, body := scrape(t, m, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no reconcile has run yet") {
		t.Errorf("healthz before a reconcile: %d %q", code, body)
	}
	m.Reconciled(errors.New(`reconcile network k1: namespace "vx-7" is odd`))
	if code, body := scrape(t, m, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `last reconcile failed: reconcile network k1`) {
		t.Errorf("healthz after a failed reconcile: %d %q", code, body)
	}
	m.Reconciled(nil)
	if code, body := scrape(t, m, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	now = now.Add(StoreFresh + time.Second)
	if code, body := scrape(t, m, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no store call has succeeded for 16s") {
		t.Errorf("healthz with a stale store: %d %q", code, body)
	}
	b.Close() // calls fail from now on
	if _, err := st.Get(ctx, "k"); err == nil {
		t.Fatal("get on a closed store succeeded")
	}

	fp := &fakePlane{}
	p := m.Plane(fp)
	if err := p.SetPeers(7, make([]dataplane.Peer, 3)); err != nil {
		t.Fatal(err)
	}
	fp.fail = true
	if err := p.SetPeers(8, nil); err == nil {
		t.Fatal("failing SetPeers succeeded")
	}
	m.ReportHosts(liveness.Counts{Alive: 2, Silent: 1})
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(m.LogHook())
	log.Warn("reconcile: recreated missing namespace")
	log.WithField("link", "vxlan0").Info("set fdb entry")
	log.WithField("link", "vxlan0").Info("set fdb entry")
	log.WithField("link", "vxlan0").Info("delete neighbour")
	log.Info("vxnet serving") // counts nothing

	m.ObservePropagation(30 * time.Millisecond)
	m.ObservePropagation(200 * time.Millisecond)
	_, text := scrape(t, m, "/metrics")
	hasLine(t, text,
		`vxnet_store_call_duration_seconds_count{op="get",result="not_found"} 1`,
		`vxnet_store_call_duration_seconds_count{op="put",result="ok"} 1`,
		`vxnet_store_call_duration_seconds_count{op="cas",result="conflict"} 1`,
		`vxnet_store_errors_total{op="get"} 1`,
		`vxnet_reconcile_runs_total{result="error"} 1`,
		`vxnet_reconcile_runs_total{result="ok"} 1`,
		`vxnet_reconcile_repairs_total 1`,
		`vxnet_peers_programmed{vni="7"} 3`,
		`vxnet_peer_updates_total{result="ok"} 1`,
		`vxnet_peer_updates_total{result="error"} 1`,
		`vxnet_peer_entry_changes_total{kind="fdb entry",op="set"} 2`,
		`vxnet_peer_entry_changes_total{kind="neighbour",op="delete"} 1`,
		`vxnet_hosts{state="alive"} 2`,
		`vxnet_hosts{state="silent"} 1`,
		`vxnet_hosts{state="gone"} 0`,
		`vxnet_networks 2`,
		`vxnet_endpoints 3`,
		`vxnet_peer_propagation_seconds_bucket{le="0.05"} 1`,
		`vxnet_peer_propagation_seconds_bucket{le="0.25"} 2`,
		`vxnet_peer_propagation_seconds_count 2`,
	)
	if code, body := scrape(t, m, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "last error: ") || !strings.Contains(body, `"k"`) {
		t.Errorf("healthz after a store error: %d %q", code, body)
	}
}

// A nil *Metrics (metrics off) takes every hook call.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.ObserveCallback("NetworkDriver.Join", "ok", time.Millisecond)
	m.Reconciled(nil)
	m.ReportHosts(liveness.Counts{})
	m.ObservePropagation(time.Second)
}

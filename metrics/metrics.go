// Package metrics is vxnet's Prometheus view of one plugin, and its health
// check. `vxnet serve --metrics-addr` creates one Metrics, hands its hooks
// to the parts it watches, and serves Handler.
//
// What it owns: a registry of its own (no package-level state, no global
// default registry), and the hooks that feed it:
//   - ObserveCallback, called by the plugin server for every callback;
//   - Store, a store.Store wrapper timing every call and counting errors
//     (Watch is counted, not timed: it blocks by design);
//   - Plane, a data plane wrapper recording the peers programmed per VNI
//     and, at scrape time, the networks and endpoints on this host;
//   - Reconciled, called after every reconcile run;
//   - ReportHosts, called by the liveness monitor after every probe round;
//   - LogHook, a logrus hook counting the repairs reconcile reports
//     ("reconcile: ..." at warn) and the peer entries the data plane writes
//     or deletes (its info lines, so only at --log-level info or debug).
//
// Health (/healthz) is 200 when a store call succeeded within StoreFresh
// and the last reconcile succeeded, else 503 naming the reason.
package metrics

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vxnet/vxnet/driver/liveness"
)

// StoreFresh is how recent the last successful store call must be for
// /healthz: every plugin writes its heartbeat every 2 s.
const StoreFresh = 15 * time.Second

// Metrics holds the registry and the health state of one plugin.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	callbacks    *prometheus.HistogramVec
	storeCalls   *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	watches      *prometheus.CounterVec
	peers        *prometheus.GaugeVec
	peerSets     *prometheus.CounterVec
	entryChanges *prometheus.CounterVec
	reconciles   *prometheus.CounterVec
	repairs      prometheus.Counter
	hosts        *prometheus.GaugeVec
	lag          prometheus.Histogram

	mu            sync.Mutex
	storeOK       time.Time // last store call that succeeded
	storeErr      error     // last store error since then
	reconcileErr  error
	reconcileDone bool
}

// New returns Metrics with a fresh registry; now is the clock (time.Now
// if nil).
func New(now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	m := &Metrics{reg: prometheus.NewRegistry(), now: now}
	m.callbacks = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vxnet_callback_duration_seconds", Help: "Docker plugin callbacks by name and result (ok, error, bad_request, timeout).",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"call", "result"})
	m.storeCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vxnet_store_call_duration_seconds", Help: "Store calls (get, put, cas, delete, delete_cas, list, put_ephemeral) by result (ok, not_found, conflict, error).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 4},
	}, []string{"op", "result"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vxnet_store_errors_total", Help: "Store calls that failed for another reason than a missing key or a lost compare-and-set, by op.",
	}, []string{"op"})
	m.watches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vxnet_store_watches_total", Help: "Store watches that returned, by result (ok, timeout, error).",
	}, []string{"result"})
	m.peers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vxnet_peers_programmed", Help: "Remote endpoint addresses programmed on vxlan0 (neighbour + FDB) by the last peer update, by VNI.",
	}, []string{"vni"})
	m.peerSets = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vxnet_peer_updates_total", Help: "Peer updates (full resyncs of a network's vxlan0 entries) by result.",
	}, []string{"result"})
	m.entryChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vxnet_peer_entry_changes_total", Help: "Neighbour, FDB, flood and bridge entries written or deleted on vxlan0, by op and kind (a resync repairing drift counts here).",
	}, []string{"op", "kind"})
	m.reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vxnet_reconcile_runs_total", Help: "Reconcile runs (kernel checked against the store) by result.",
	}, []string{"result"})
	m.repairs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vxnet_reconcile_repairs_total", Help: "Repairs reconcile reported: namespaces recreated, stale ports or namespaces removed, endpoints republished.",
	})
	m.hosts = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vxnet_hosts", Help: "Other hosts as this host's liveness monitor sees them, by state (alive, silent, gone).",
	}, []string{"state"})
	m.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vxnet_peer_propagation_seconds",
		Help:    "From another host writing an endpoint record to this host programming it (watch lag; by the two hosts' clocks).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.reg.MustRegister(m.lag, m.callbacks, m.storeCalls, m.storeErrors, m.watches, m.peers, m.peerSets, m.entryChanges,
		m.reconciles, m.repairs, m.hosts, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where further collectors go.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObservePropagation records how long another host's endpoint took to be
// programmed here (driver.Options.ObserveLag); nothing on a nil *Metrics.
func (m *Metrics) ObservePropagation(d time.Duration) {
	if m == nil {
		return
	}
	m.lag.Observe(max(d, 0).Seconds())
}

// ObserveCallback records one plugin callback (server.Options.Observe).
// Like Reconciled and ReportHosts, it does nothing on a nil *Metrics
// (metrics off).
func (m *Metrics) ObserveCallback(call, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.callbacks.WithLabelValues(call, result).Observe(took.Seconds())
}

// Reconciled records a reconcile run.
func (m *Metrics) Reconciled(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reconciles.WithLabelValues(result).Inc()
	m.mu.Lock()
	m.reconcileErr, m.reconcileDone = err, true
	m.mu.Unlock()
}

// ReportHosts records the liveness monitor's view of the other hosts
// (liveness.Options.Report).
func (m *Metrics) ReportHosts(c liveness.Counts) {
	if m == nil {
		return
	}
	m.hosts.WithLabelValues("alive").Set(float64(c.Alive))
	m.hosts.WithLabelValues("silent").Set(float64(c.Silent))
	m.hosts.WithLabelValues("gone").Set(float64(c.Gone))
}

// storeResult notes a store call's outcome for /healthz.
func (m *Metrics) storeResult(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.storeOK, m.storeErr = m.now(), nil
	} else {
		m.storeErr = err
	}
}

// Health returns nil when the plugin is healthy, else the reason.
func (m *Metrics) Health() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.storeOK.IsZero():
		return fmt.Errorf("no store call has succeeded yet (last error: %v)", m.storeErr)
	case m.now().Sub(m.storeOK) > StoreFresh:
		return fmt.Errorf("no store call has succeeded for %s (last error: %v)", m.now().Sub(m.storeOK).Round(time.Second), m.storeErr)
	case !m.reconcileDone:
		return fmt.Errorf("no reconcile has run yet")
	case m.reconcileErr != nil:
		return fmt.Errorf("last reconcile failed: %v", m.reconcileErr)
	}
	return nil
}

// Handler serves /metrics and /healthz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := m.Health(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "unhealthy:", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

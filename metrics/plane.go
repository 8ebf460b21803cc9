package metrics

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/driver/dataplane"
)

// Plane wraps the data plane p: peer updates set vxnet_peers_programmed,
// and the networks and endpoints on this host are counted from the kernel
// at scrape time (vxnet_networks, vxnet_endpoints). Call it once.
func (m *Metrics) Plane(p driver.Dataplane) driver.Dataplane {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vxnet_networks", Help: "vxnet networks (namespaces) on this host."}, func() float64 {
			vnis, err := p.Networks()
			if err != nil {
				return -1
			}
			return float64(len(vnis))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vxnet_endpoints", Help: "Endpoints (bridge ports) on this host, all networks."}, func() float64 {
			vnis, err := p.Networks()
			if err != nil {
				return -1
			}
			n := 0
			for _, v := range vnis {
				eps, err := p.Endpoints(v)
				if err != nil {
					return -1
				}
				n += len(eps)
			}
			return float64(n)
		}),
	)
	return &plane{Dataplane: p, m: m}
}

type plane struct {
	driver.Dataplane
	m *Metrics
}

func (p *plane) SetPeers(vni uint32, peers []dataplane.Peer) error {
	err := p.Dataplane.SetPeers(vni, peers)
	if err != nil {
		p.m.peerSets.WithLabelValues("error").Inc()
		return err
	}
	p.m.peerSets.WithLabelValues("ok").Inc()
	p.m.peers.WithLabelValues(strconv.FormatUint(uint64(vni), 10)).Set(float64(len(peers)))
	return nil
}

func (p *plane) DeleteNetwork(vni uint32) error {
	err := p.Dataplane.DeleteNetwork(vni)
	if err == nil {
		p.m.peers.DeleteLabelValues(strconv.FormatUint(uint64(vni), 10))
	}
	return err
}

// LogHook counts what the driver and data plane report in their logs:
// reconcile's repairs, and vxlan0 entries written or deleted.
func (m *Metrics) LogHook() logrus.Hook { return logHook{m} }

type logHook struct{ m *Metrics }

func (logHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.WarnLevel, logrus.InfoLevel}
}

// entryKinds are the kinds of neighOp's "<op> <kind>" info lines.
var entryKinds = []string{"neighbour", "fdb entry", "flood entry", "bridge fdb entry"}

func (h logHook) Fire(e *logrus.Entry) error {
	if e.Level == logrus.WarnLevel && strings.HasPrefix(e.Message, "reconcile: ") {
		h.m.repairs.Inc()
		return nil
	}
	if _, ok := e.Data["link"]; !ok || e.Level != logrus.InfoLevel {
		return nil
	}
	op, kind, ok := strings.Cut(e.Message, " ")
	if ok && (op == "set" || op == "append" || op == "delete") {
		for _, k := range entryKinds {
			if kind == k {
				h.m.entryChanges.WithLabelValues(op, kind).Inc()
			}
		}
	}
	return nil
}

package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// L4Stats is one L4 service's counters, read at scrape time from the BPF
// data plane's per-CPU maps (summed over CPUs) or from the userspace
// proxy: the same metrics whichever data plane serves.
type L4Stats struct {
	Service string
	// DataPlane is "bpf" or "userspace".
	DataPlane string
	// Generation is the BPF table generation (0 in userspace).
	Generation uint64
	Backends   []L4BackendStats
	// Drops counts dropped packets (BPF) or refused connections and
	// datagrams (userspace), by reason.
	Drops map[string]uint64
}

// L4BackendStats is one L4 backend's counters.
type L4BackendStats struct {
	Addr                     string
	Packets, Bytes, NewFlows uint64
}

// L4Source returns the counters of some L4 services.
type L4Source func() []L4Stats

// l4Descs describe the L4 metrics.
var l4Descs = struct {
	packets, bytes, flows, drops, generation, dataPlane *prometheus.Desc
}{
	packets: prometheus.NewDesc("weir_l4_packets_total", "Packets (BPF) or datagrams and segments' worth of reads (userspace) sent to a backend.", []string{"service", "backend"}, nil),
	bytes:   prometheus.NewDesc("weir_l4_bytes_total", "Bytes sent to a backend.", []string{"service", "backend"}, nil),
	flows:   prometheus.NewDesc("weir_l4_new_flows_total", "New flows (TCP connections, UDP flows) sent to a backend.", []string{"service", "backend"}, nil),
	drops:   prometheus.NewDesc("weir_l4_drops_total", "Packets, connections or datagrams dropped, by reason.", []string{"service", "reason"}, nil),
	generation: prometheus.NewDesc("weir_l4_table_generation", "Generation of the service's BPF selection table; it grows with every rebuild.",
		[]string{"service"}, nil),
	dataPlane: prometheus.NewDesc("weir_l4_data_plane", "Always 1; data_plane names what serves the service: bpf or userspace.",
		[]string{"service", "data_plane"}, nil),
}

// WatchL4 adds a source of L4 counters, read at every scrape.
func (m *Metrics) WatchL4(src L4Source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.l4 = append(m.l4, src)
}

func collectL4(ch chan<- prometheus.Metric, sources []L4Source) {
	d := &l4Descs
	for _, src := range sources {
		for _, s := range src() {
			ch <- prometheus.MustNewConstMetric(d.dataPlane, prometheus.GaugeValue, 1, s.Service, s.DataPlane)
			ch <- prometheus.MustNewConstMetric(d.generation, prometheus.GaugeValue, float64(s.Generation), s.Service)
			for _, b := range s.Backends {
				ch <- prometheus.MustNewConstMetric(d.packets, prometheus.CounterValue, float64(b.Packets), s.Service, b.Addr)
				ch <- prometheus.MustNewConstMetric(d.bytes, prometheus.CounterValue, float64(b.Bytes), s.Service, b.Addr)
				ch <- prometheus.MustNewConstMetric(d.flows, prometheus.CounterValue, float64(b.NewFlows), s.Service, b.Addr)
			}
			reasons := make([]string, 0, len(s.Drops))
			for r := range s.Drops {
				reasons = append(reasons, r)
			}
			sort.Strings(reasons)
			for _, r := range reasons {
				ch <- prometheus.MustNewConstMetric(d.drops, prometheus.CounterValue, float64(s.Drops[r]), s.Service, r)
			}
		}
	}
}

// scrapeCollector reads the scrape-time sources: backend state, L4
// counters and the BGP speaker's state.
type scrapeCollector struct{ m *Metrics }

var _ prometheus.Collector = (*scrapeCollector)(nil)

// Describe implements prometheus.Collector.
func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	f := &c.m.backend
	for _, d := range []*prometheus.Desc{f.up, f.enabled, f.weight, f.inFlight, f.ejected, f.ejections, f.backup,
		l4Descs.packets, l4Descs.bytes, l4Descs.flows, l4Descs.drops, l4Descs.generation, l4Descs.dataPlane,
		c.m.slots.maxConns,
		bgpDescs.announced, bgpDescs.announcements, bgpDescs.withdrawals, bgpDescs.peerUp, bgpDescs.peerState} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	balancers := append([]balancerSource(nil), c.m.balancers...)
	l4 := append([]L4Source(nil), c.m.l4...)
	bgp := append([]BGPSource(nil), c.m.bgp...)
	c.m.mu.Unlock()
	c.m.collectBalancers(ch, balancers)
	collectL4(ch, l4)
	collectBGP(ch, bgp)
}

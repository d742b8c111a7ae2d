package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/limit"
)

// LimitSource is one HTTP service's overload protection, read at scrape
// time: its client limits and its listeners' connection limits.
type LimitSource struct {
	// Service names the service.
	Service string
	// Limits are the service's client limits (nil: none): what each
	// refused, and the state of its rate and connection limiters.
	Limits *l7.ClientLimits
	// Listeners are the service's configured listeners.
	Listeners []ListenerSource
}

// ListenerSource is one configured listener of an HTTP service.
type ListenerSource struct {
	// Listener is its address as configured.
	Listener string
	// Gate is its max_connections (nil: none, and then its open
	// connections are not reported: a gate is what counts them).
	Gate *limit.Gate
	// Limited counts the times its accept loops found it at the limit
	// (l7.ListenerOptions.Limited); nil: not counted.
	Limited *atomic.Uint64
}

// limitDescs are the scrape-time families of overload protection.
var limitDescs = struct {
	limited, rateClients, rateEvictions, connClients, listenerConns, listenerLimited *prometheus.Desc
}{
	limited: prometheus.NewDesc(namespace+"_http_limited_total",
		"Requests refused by a client limit: rate (429), body (413), header (431); and client_connections, connections closed at a client's connection limit.",
		[]string{"service", "limit"}, nil),
	rateClients: prometheus.NewDesc(namespace+"_rate_limit_clients",
		"Clients the rate limit tracks (those whose token bucket is not full, and some that refilled since the last sweep).",
		[]string{"service"}, nil),
	rateEvictions: prometheus.NewDesc(namespace+"_rate_limit_evictions_total",
		"Clients the rate limit forgot before their bucket was full, to make room at max_clients; each got a fresh burst. Growing: raise max_clients.",
		[]string{"service"}, nil),
	connClients: prometheus.NewDesc(namespace+"_client_connection_limit_clients",
		"Clients with at least one connection open, as the per-client connection limit counts them.",
		[]string{"service"}, nil),
	listenerConns: prometheus.NewDesc(namespace+"_listener_connections",
		"Connections open on a configured listener (the slots of its max_connections in use).",
		[]string{"service", "listener"}, nil),
	listenerLimited: prometheus.NewDesc(namespace+"_listener_limited_total",
		"Times a listener's accept loop found it at max_connections and stopped accepting, leaving new connections in the kernel's queue.",
		[]string{"service", "listener"}, nil),
}

// WatchLimits reports src at every scrape.
func (m *Metrics) WatchLimits(src LimitSource) {
	m.limitsOnce.Do(func() { m.Registry.MustRegister(limitCollector{m}) })
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limits = append(m.limits, src)
}

// limitCollector reads the LimitSources.
type limitCollector struct{ m *Metrics }

var _ prometheus.Collector = limitCollector{}

// Describe implements prometheus.Collector.
func (c limitCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &limitDescs
	for _, desc := range []*prometheus.Desc{d.limited, d.rateClients, d.rateEvictions, d.connClients, d.listenerConns, d.listenerLimited} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (c limitCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	sources := append([]LimitSource(nil), c.m.limits...)
	c.m.mu.Unlock()
	d := &limitDescs
	for _, src := range sources {
		if cl := src.Limits; cl != nil {
			for _, l := range l7.Limits {
				ch <- prometheus.MustNewConstMetric(d.limited, prometheus.CounterValue, float64(cl.Limited(l)), src.Service, l.String())
			}
			if cl.Rate != nil {
				ch <- prometheus.MustNewConstMetric(d.rateClients, prometheus.GaugeValue, float64(cl.Rate.Len()), src.Service)
				ch <- prometheus.MustNewConstMetric(d.rateEvictions, prometheus.CounterValue, float64(cl.Rate.Evicted()), src.Service)
			}
			if cl.Conns != nil {
				ch <- prometheus.MustNewConstMetric(d.connClients, prometheus.GaugeValue, float64(cl.Conns.Len()), src.Service)
			}
		}
		for _, ls := range src.Listeners {
			if ls.Gate != nil {
				ch <- prometheus.MustNewConstMetric(d.listenerConns, prometheus.GaugeValue, float64(ls.Gate.InUse()), src.Service, ls.Listener)
			}
			if ls.Limited != nil {
				ch <- prometheus.MustNewConstMetric(d.listenerLimited, prometheus.CounterValue, float64(ls.Limited.Load()), src.Service, ls.Listener)
			}
		}
	}
}

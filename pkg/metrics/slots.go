package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-lb/weir/pkg/lb"
)

// slotFamilies are the families of per-backend connection limits
// (max_connections) and of each pool's wait queue.
type slotFamilies struct {
	maxConns            *prometheus.Desc
	length, size        *prometheus.Desc
	timeouts, full, all *prometheus.Desc
	wait                *prometheus.HistogramVec

	// sources are the queues read at scrape time, under Metrics.mu.
	sources []queueSource
}

// queueSource is one pool's wait queue.
type queueSource struct {
	service string
	queue   func() lb.QueueStatus
}

// queueBuckets span a wait in the queue: from a slot freed at once to the
// queue timeout's 5s default and beyond.
var queueBuckets = []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newSlotFamilies() slotFamilies {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "http", name), help, []string{"service"}, nil)
	}
	return slotFamilies{
		maxConns: prometheus.NewDesc(prometheus.BuildFQName(namespace, "backend", "max_connections"),
			"The backend's limit of requests in flight (max_connections); absent when it has none.",
			[]string{"service", "backend"}, nil),
		length:   desc("queue_length", "Requests waiting now in the pool's queue for a backend's connection slot."),
		size:     desc("queue_size", "The bound of the pool's queue (queue.size)."),
		timeouts: desc("queue_timeouts_total", "Requests answered 503 after waiting queue.timeout in the pool's queue."),
		full:     desc("queue_full_total", "Requests answered 503 at once: every backend full and the pool's queue full."),
		all:      desc("queue_waits_total", "Requests that waited in the pool's queue, whatever became of them."),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "queue_wait_seconds",
			Help:    "Time a request waited in the pool's queue, by result: slot (it got one), timeout or gone (the client or server ended the wait). Only requests that waited.",
			Buckets: queueBuckets,
		}, []string{"service", "result"}),
	}
}

// WatchQueue reports the wait queue of pool service at every scrape, from
// queue (a LoadBalancer's Queue method).
func (m *Metrics) WatchQueue(service string, queue func() lb.QueueStatus) {
	m.mu.Lock()
	m.slots.sources = append(m.slots.sources, queueSource{service: service, queue: queue})
	m.mu.Unlock()
}

// QueueWaited returns the hook to set as pool service's
// lb.ConnLimits.Waited, which times each request that waits in its queue.
func (m *Metrics) QueueWaited(service string) func(time.Duration, error) {
	f := &m.slots
	slot, timeout, gone := f.wait.WithLabelValues(service, "slot"), f.wait.WithLabelValues(service, "timeout"),
		f.wait.WithLabelValues(service, "gone")
	return func(d time.Duration, err error) {
		switch {
		case err == nil:
			slot.Observe(d.Seconds())
		case errors.Is(err, lb.ErrQueueTimeout):
			timeout.Observe(d.Seconds())
		default:
			gone.Observe(d.Seconds())
		}
	}
}

// slotCollector reads the queues at scrape time.
type slotCollector struct{ m *Metrics }

var _ prometheus.Collector = (*slotCollector)(nil)

// Describe implements prometheus.Collector.
func (c *slotCollector) Describe(ch chan<- *prometheus.Desc) {
	f := &c.m.slots
	for _, d := range []*prometheus.Desc{f.length, f.size, f.timeouts, f.full, f.all} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *slotCollector) Collect(ch chan<- prometheus.Metric) {
	f := &c.m.slots
	c.m.mu.Lock()
	sources := append([]queueSource(nil), f.sources...)
	c.m.mu.Unlock()
	for _, src := range sources {
		q := src.queue()
		ch <- prometheus.MustNewConstMetric(f.length, prometheus.GaugeValue, float64(q.Length), src.service)
		ch <- prometheus.MustNewConstMetric(f.size, prometheus.GaugeValue, float64(q.Size), src.service)
		ch <- prometheus.MustNewConstMetric(f.timeouts, prometheus.CounterValue, float64(q.Timeouts), src.service)
		ch <- prometheus.MustNewConstMetric(f.full, prometheus.CounterValue, float64(q.Full), src.service)
		ch <- prometheus.MustNewConstMetric(f.all, prometheus.CounterValue, float64(q.Waited), src.service)
	}
}

// collectMaxConns sends a backend's max_connections, when it has one:
// part of the scrape of its balancer (collectBalancers).
func (f *slotFamilies) collectMaxConns(ch chan<- prometheus.Metric, st *lb.Status, labels []string) {
	if st.MaxConnections > 0 {
		ch <- prometheus.MustNewConstMetric(f.maxConns, prometheus.GaugeValue, float64(st.MaxConnections), labels...)
	}
}

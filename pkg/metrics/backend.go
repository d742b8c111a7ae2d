package metrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-lb/weir/pkg/lb"
)

// backendFamilies are the families of load balancers: health checks,
// discovery, and backend state read at scrape time.
type backendFamilies struct {
	transitions   *prometheus.CounterVec
	checkDuration *prometheus.HistogramVec
	checkFailures *prometheus.CounterVec
	refreshes     *prometheus.CounterVec
	refreshTime   *prometheus.HistogramVec
	rebuilds      *prometheus.CounterVec

	up, enabled, weight, inFlight *prometheus.Desc
	ejected, ejections, backup    *prometheus.Desc
}

// Health check failure reasons, the values of the reason label.
const (
	checkTimeout  = "timeout"
	checkRefused  = "refused"
	checkReset    = "reset"
	checkTLS      = "tls"
	checkStatus   = "status"
	checkBody     = "body"
	checkProtocol = "other"
)

func newBackendFamilies() backendFamilies {
	sb := []string{"service", "backend"}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "backend", name), help, sb, nil)
	}
	return backendFamilies{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "backend", Name: "transitions_total",
			Help: "Health transitions of a backend, by the state it went to (up or down).",
		}, []string{"service", "backend", "to"}),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "health_check", Name: "duration_seconds",
			Help: "Time a health check took, passed or failed.", Buckets: connectBuckets,
		}, sb),
		checkFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "health_check", Name: "failures_total",
			Help: "Failed health checks, by reason: timeout, refused, reset, tls, status (unexpected status), body (expected text missing) or other.",
		}, []string{"service", "backend", "reason"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "discovery", Name: "refreshes_total",
			Help: "Discovery refreshes, by result (ok or error); after an error the last good backends stay in service.",
		}, []string{"service", "result"}),
		refreshTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "discovery", Name: "duration_seconds",
			Help: "Time a successful discovery refresh took.", Buckets: connectBuckets,
		}, []string{"service"}),
		rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "selector", Name: "rebuilds_total",
			Help: "Selector (hash ring, Maglev table) rebuilds after the backends or their weights changed.",
		}, []string{"service"}),
		up: desc("up", "1 when the backend passes its active health checks, else 0; "+
			"an ejected backend stays up (see weir_backend_ejected)."),
		ejected: desc("ejected", "1 while passive health (outlier detection) keeps the backend out of selection, else 0."),
		ejections: prometheus.NewDesc(prometheus.BuildFQName(namespace, "backend", "ejections_total"),
			"Ejections of the backend by passive health since it joined its load balancer.", sb, nil),
		backup:   desc("backup", "1 for a backup backend, selected only while no primary is usable; 0 for a primary."),
		enabled:  desc("enabled", "1 when the backend may receive traffic, 0 while drained (by the admin API or discovery)."),
		weight:   desc("weight", "The backend's weight."),
		inFlight: desc("requests_in_flight", "Requests (L7) being served by the backend now."),
	}
}

func (f *backendFamilies) register(r *prometheus.Registry) {
	r.MustRegister(f.transitions, f.checkDuration, f.checkFailures, f.refreshes, f.refreshTime, f.rebuilds)
}

// balancerSource is one service's load balancer, read at scrape time.
type balancerSource struct {
	service string
	status  func() []lb.Status
}

// Balancer instruments the load balancer of service before it is made:
// it sets opts.Checked and opts.Updated and adds an observer counting
// transitions. When http is not nil, it also resolves the per-backend
// request counters (opts.Attach) and drops a departed backend's series.
func (m *Metrics) Balancer(service string, opts *lb.Options, http *HTTPService) {
	f := &m.backend
	opts.Checked = func(b lb.Backend, err error, latency time.Duration) {
		f.checkDuration.WithLabelValues(service, b.Addr).Observe(latency.Seconds())
		if err != nil {
			f.checkFailures.WithLabelValues(service, b.Addr, checkReason(err)).Inc()
		}
	}
	opts.Updated = func(stats lb.UpdateStats, err error) {
		if err != nil {
			f.refreshes.WithLabelValues(service, "error").Inc()
			return
		}
		f.refreshes.WithLabelValues(service, "ok").Inc()
		f.refreshTime.WithLabelValues(service).Observe(stats.Discovery.Seconds())
		if stats.Rebuilt {
			f.rebuilds.WithLabelValues(service).Inc()
		}
	}
	if http != nil {
		opts.Attach = http.Attach
	}
	opts.Observers = append(opts.Observers, lb.ObserverFunc(func(e lb.Event) {
		switch e.Kind {
		case lb.HealthChanged:
			to := "down"
			if e.Healthy {
				to = "up"
			}
			f.transitions.WithLabelValues(service, e.Backend.Addr, to).Inc()
		case lb.Removed:
			f.forget(service, e.Backend.Addr)
			if http != nil {
				http.Forget(e.Backend.Addr)
			}
		}
	}))
}

// forget deletes the series of a backend that left service.
func (f *backendFamilies) forget(service, addr string) {
	f.transitions.DeleteLabelValues(service, addr, "up")
	f.transitions.DeleteLabelValues(service, addr, "down")
	f.checkDuration.DeleteLabelValues(service, addr)
	for _, r := range []string{checkTimeout, checkRefused, checkReset, checkTLS, checkStatus, checkBody, checkProtocol} {
		f.checkFailures.DeleteLabelValues(service, addr, r)
	}
}

// WatchBalancer reports the backends of service at every scrape: their
// health, enablement, weight, requests in flight, passive health's
// ejections and backup role, from status (a LoadBalancer's Status method).
func (m *Metrics) WatchBalancer(service string, status func() []lb.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.balancers = append(m.balancers, balancerSource{service: service, status: status})
}

// checkReason classifies a failed health check.
func checkReason(err error) string {
	var (
		ne      net.Error
		certErr *tls.CertificateVerificationError
		alert   tls.AlertError
		unknown x509.UnknownAuthorityError
	)
	switch {
	case errors.Is(err, lb.ErrCheckTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return checkTimeout
	case errors.Is(err, lb.ErrUnexpectedStatus):
		return checkStatus
	case errors.Is(err, lb.ErrBodyMismatch):
		return checkBody
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return checkRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return checkReset
	case errors.As(err, &certErr), errors.As(err, &alert), errors.As(err, &unknown):
		return checkTLS
	}
	return checkProtocol
}

// collectBalancers sends the scrape-time backend metrics.
func (m *Metrics) collectBalancers(ch chan<- prometheus.Metric, sources []balancerSource) {
	f := &m.backend
	for _, src := range sources {
		for _, st := range src.status() {
			labels := []string{src.service, st.Backend.Addr}
			ch <- prometheus.MustNewConstMetric(f.up, prometheus.GaugeValue, boolValue(st.Healthy), labels...)
			ch <- prometheus.MustNewConstMetric(f.enabled, prometheus.GaugeValue, boolValue(st.Enabled), labels...)
			ch <- prometheus.MustNewConstMetric(f.weight, prometheus.GaugeValue, float64(st.Backend.Weight), labels...)
			ch <- prometheus.MustNewConstMetric(f.inFlight, prometheus.GaugeValue, float64(st.InFlight), labels...)
			ch <- prometheus.MustNewConstMetric(f.ejected, prometheus.GaugeValue, boolValue(st.Ejected), labels...)
			ch <- prometheus.MustNewConstMetric(f.ejections, prometheus.CounterValue, float64(st.Ejections), labels...)
			ch <- prometheus.MustNewConstMetric(f.backup, prometheus.GaugeValue, boolValue(st.Backend.Backup), labels...)
			m.slots.collectMaxConns(ch, &st, labels)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-lb/weir/pkg/l7"
)

// routeFamilies are the families of an HTTP service's routes.
type routeFamilies struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRouteFamilies() routeFamilies {
	return routeFamilies{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "route_requests_total",
			Help: "Requests a route took, by the class of the status sent (none: no response).",
		}, []string{"service", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "route_request_duration_seconds",
			Help: "Time from the request head's arrival to the response's last byte, by route.", Buckets: requestBuckets,
		}, []string{"service", "route"}),
	}
}

func (f *routeFamilies) register(r *prometheus.Registry) {
	r.MustRegister(f.requests, f.duration)
}

// routeCounters are one route's handles, resolved once.
type routeCounters struct {
	requests [len(statusClasses)]prometheus.Counter
	duration prometheus.Observer
}

// Routes makes the counters of the service's routes, by name, and
// exports unmatched (the routing table's count of requests no route
// took) as weir_http_unrouted_requests_total. Call it once, before the
// service serves: RequestDone reads the handles without a lock.
func (s *HTTPService) Routes(names []string, unmatched func() uint64) {
	f := &s.m.route
	s.routes = make(map[string]*routeCounters, len(names))
	for _, name := range names {
		rc := &routeCounters{duration: f.duration.WithLabelValues(s.name, name)}
		for i, class := range statusClasses {
			rc.requests[i] = f.requests.WithLabelValues(s.name, name, class)
		}
		s.routes[name] = rc
	}
	s.m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "http", Name: "unrouted_requests_total",
		Help:        "Requests no route took, answered 404 by weir.",
		ConstLabels: prometheus.Labels{"service": s.name},
	}, func() float64 { return float64(unmatched()) }))
}

// routeDone counts a request against the route that took it.
func (s *HTTPService) routeDone(sess *l7.Session) {
	rc := s.routes[sess.Route]
	if rc == nil {
		return
	}
	rc.requests[classOf(sess.Status)].Inc()
	rc.duration.Observe(sess.End.Sub(sess.Start).Seconds())
}

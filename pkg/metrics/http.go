package metrics

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
)

// Buckets of the latency histograms, in seconds. A proxy's own latency is
// sub-millisecond on a LAN, so the scale starts at 100 µs; it ends at a
// minute, past the default read timeout.
var (
	requestBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	connectBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// Status classes, the values of the code label. "none" counts requests
// that got no response (the client left, or the connection failed before
// a head could be sent).
var statusClasses = [...]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

// classOf maps a status to its index in statusClasses.
func classOf(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

// httpFamilies are the families of the HTTP services.
type httpFamilies struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	connect        *prometheus.HistogramVec
	firstByte      *prometheus.HistogramVec
	requestBytes   *prometheus.CounterVec
	responseBytes  *prometheus.CounterVec
	retries        *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	upstreamConns  *prometheus.CounterVec
	connsAccepted  *prometheus.CounterVec
	handshakes     *prometheus.CounterVec
	streams        *prometheus.CounterVec
	budgetExceeded *prometheus.CounterVec
}

func newHTTPFamilies() httpFamilies {
	sb := []string{"service", "backend"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "http", Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "http", Name: name, Help: help, Buckets: buckets}, sb)
	}
	return httpFamilies{
		requests: counter("requests_total",
			"Requests served, by the backend that served them (empty when none did) and the class of the status sent (none: no response).",
			"service", "backend", "code"),
		duration: histogram("request_duration_seconds",
			"Time from the request head's arrival to the response's last byte.", requestBuckets),
		connect: histogram("upstream_connect_duration_seconds",
			"Time to open a new upstream connection, TCP and TLS handshakes included.", connectBuckets),
		firstByte: histogram("upstream_first_byte_duration_seconds",
			"Time from sending a request upstream to the arrival of the upstream's response head.", requestBuckets),
		requestBytes: counter("request_body_bytes_total",
			"Request body bytes received from clients and sent upstream.", sb...),
		responseBytes: counter("response_body_bytes_total",
			"Response body bytes sent to clients.", sb...),
		retries: counter("retries_total",
			"Retries: requests sent again after an attempt failed, by why it failed (connect, reset, timeout, 502, 503, 504).", "service", "reason"),
		upstreamErrors: counter("upstream_errors_total",
			"Requests that failed for the upstream's fault, by reason: refused, timeout, reset, tls, protocol, unavailable (no healthy backend) or other.",
			"service", "backend", "reason"),
		upstreamConns: counter("upstream_connections_total",
			"Upstream connections requests went over: new (dialled for the request) or reused (from the pool).",
			"service", "backend", "kind"),
		connsAccepted: counter("connections_accepted_total", "Client connections accepted.", "service"),
		handshakes: counter("tls_handshakes_total",
			"Client TLS handshakes, by result (ok or failed).", "service", "result"),
		streams: counter("http2_streams_total", "HTTP/2 streams opened by clients.", "service"),
		budgetExceeded: counter("retry_budget_exhausted_total",
			"Retries a retry policy's budget refused: the failure at hand was answered instead.", "service"),
	}
}

func (f *httpFamilies) register(r *prometheus.Registry) {
	r.MustRegister(f.requests, f.duration, f.connect, f.firstByte, f.requestBytes, f.responseBytes,
		f.retries, f.upstreamErrors, f.upstreamConns, f.connsAccepted, f.handshakes, f.streams, f.budgetExceeded)
}

// HTTPService counts one HTTP service's connections and requests. It is
// an l7.Observer; its per-backend handles are made by Attach.
type HTTPService struct {
	name string
	m    *Metrics
	// routes are the counters of the service's routes, by name; nil for
	// a service without routes (Routes).
	routes map[string]*routeCounters
	// inFlight and open are plain atomics, exported by gauge functions:
	// a prometheus.Gauge's Inc and Dec are compare-and-swap loops on a
	// float, twice per request.
	inFlight atomic.Int64
	open     atomic.Int64
	accepted prometheus.Counter
	tlsOK    prometheus.Counter
	tlsBad   prometheus.Counter
	streams  prometheus.Counter
	retries  retryCounters
	// none counts the requests no backend served; nil for a pool.
	none *Backend

	// mu guards backends and their histories, for the status report.
	mu       sync.Mutex
	backends map[string]*Backend
}

var _ l7.Observer = (*HTTPService)(nil)

// HTTPService returns the counters of the HTTP service name, making them
// on first use.
func (m *Metrics) HTTPService(name string) *HTTPService {
	return m.httpService(name, true)
}

// Pool returns the per-backend request counters of the named pool name
// (key upstreams), which every service sending requests to it counts
// into: a pool's backends are labelled with the pool's name, as an
// inline upstream's are with its service's. A pool accepts no
// connections, so it has no connection gauges.
func (m *Metrics) Pool(name string) *HTTPService {
	return m.httpService(name, false)
}

func (m *Metrics) httpService(name string, service bool) *HTTPService {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.services[name]; s != nil {
		return s
	}
	f := &m.http
	s := &HTTPService{name: name, m: m, backends: map[string]*Backend{}}
	m.services[name] = s
	if service {
		// A pool takes no connections and serves no requests of its own:
		// it has none of these, rather than series that stay at 0.
		s.accepted = f.connsAccepted.WithLabelValues(name)
		s.tlsOK = f.handshakes.WithLabelValues(name, "ok")
		s.tlsBad = f.handshakes.WithLabelValues(name, "failed")
		s.streams = f.streams.WithLabelValues(name)
		s.retries = newRetryCounters(f, name)
		s.none = s.newBackend("")
		m.Registry.MustRegister(
			serviceGauge(name, "requests_in_flight", "Requests being served now.", &s.inFlight),
			serviceGauge(name, "connections_open", "Client connections open now.", &s.open))
	}
	return s
}

// serviceGauge exports v as the gauge weir_http_NAME{service}.
func serviceGauge(service, name, help string, v *atomic.Int64) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "http", Name: name, Help: help,
		ConstLabels: prometheus.Labels{"service": service},
	}, func() float64 { return float64(v.Load()) })
}

// Backend holds the counters of one backend of one service, resolved
// once so that counting a request looks nothing up.
type Backend struct {
	addr      string
	requests  [len(statusClasses)]prometheus.Counter
	duration  prometheus.Observer
	connect   prometheus.Observer
	firstByte prometheus.Observer
	reqBytes  prometheus.Counter
	respBytes prometheus.Counter
	errors    [len(upstreamReasons)]prometheus.Counter
	dialled   prometheus.Counter
	reused    prometheus.Counter
	// history holds recent totals for the status page's rates; the
	// service's mu guards it.
	history history
}

// upstreamReasons are every value of l7.UpstreamReason but "": the
// reason label's values, and the order of a Backend's errors counters.
var upstreamReasons = [...]string{l7.ReasonRefused, l7.ReasonTimeout, l7.ReasonReset, l7.ReasonTLS,
	l7.ReasonProtocol, l7.ReasonUnavailable, l7.ReasonOther}

func (s *HTTPService) newBackend(addr string) *Backend {
	f := &s.m.http
	b := &Backend{
		addr:      addr,
		duration:  f.duration.WithLabelValues(s.name, addr),
		connect:   f.connect.WithLabelValues(s.name, addr),
		firstByte: f.firstByte.WithLabelValues(s.name, addr),
		reqBytes:  f.requestBytes.WithLabelValues(s.name, addr),
		respBytes: f.responseBytes.WithLabelValues(s.name, addr),
		dialled:   f.upstreamConns.WithLabelValues(s.name, addr, "new"),
		reused:    f.upstreamConns.WithLabelValues(s.name, addr, "reused"),
	}
	for i, class := range statusClasses {
		b.requests[i] = f.requests.WithLabelValues(s.name, addr, class)
	}
	for i, reason := range upstreamReasons {
		b.errors[i] = f.upstreamErrors.WithLabelValues(s.name, addr, reason)
	}
	return b
}

// Attach makes the counters of a backend joining the service's load
// balancer: pass it as lb.Options.Attach.
func (s *HTTPService) Attach(b lb.Backend) any {
	be := s.newBackend(b.Addr)
	s.mu.Lock()
	s.backends[b.Addr] = be
	s.mu.Unlock()
	return be
}

// Forget deletes the series of a backend that left the service, so that
// churning addresses (DNS discovery) do not pile up series forever. A
// request still in flight to it counts into a detached handle.
func (s *HTTPService) Forget(addr string) {
	s.mu.Lock()
	delete(s.backends, addr)
	s.mu.Unlock()
	f := &s.m.http
	f.duration.DeleteLabelValues(s.name, addr)
	f.connect.DeleteLabelValues(s.name, addr)
	f.firstByte.DeleteLabelValues(s.name, addr)
	f.requestBytes.DeleteLabelValues(s.name, addr)
	f.responseBytes.DeleteLabelValues(s.name, addr)
	f.upstreamConns.DeleteLabelValues(s.name, addr, "new")
	f.upstreamConns.DeleteLabelValues(s.name, addr, "reused")
	for _, class := range statusClasses {
		f.requests.DeleteLabelValues(s.name, addr, class)
	}
	for _, reason := range upstreamReasons {
		f.upstreamErrors.DeleteLabelValues(s.name, addr, reason)
	}
}

// ConnOpened implements l7.Observer.
func (s *HTTPService) ConnOpened() {
	s.accepted.Inc()
	s.open.Add(1)
}

// ConnClosed implements l7.Observer.
func (s *HTTPService) ConnClosed() { s.open.Add(-1) }

// Handshake implements l7.Observer.
func (s *HTTPService) Handshake(_ *tls.ConnectionState, err error) {
	if err != nil {
		s.tlsBad.Inc()
		return
	}
	s.tlsOK.Inc()
}

// StreamOpened implements l7.Observer.
func (s *HTTPService) StreamOpened() { s.streams.Inc() }

// RequestStarted implements l7.Observer.
func (s *HTTPService) RequestStarted(*l7.Session) { s.inFlight.Add(1) }

// RequestDone implements l7.Observer: it counts the request against the
// backend that served it, or tried last.
func (s *HTTPService) RequestDone(sess *l7.Session, err error) {
	s.inFlight.Add(-1)
	b := s.backendOf(sess)
	b.requests[classOf(sess.Status)].Inc()
	b.duration.Observe(sess.End.Sub(sess.Start).Seconds())
	if sess.BytesReceived > 0 {
		b.reqBytes.Add(float64(sess.BytesReceived))
	}
	if sess.BytesSent > 0 {
		b.respBytes.Add(float64(sess.BytesSent))
	}
	s.retries.done(sess)
	if sess.Attempts > 0 {
		if sess.Reused {
			b.reused.Inc()
		} else if sess.Connect > 0 {
			b.dialled.Inc()
			b.connect.Observe(sess.Connect.Seconds())
		}
	}
	if sess.FirstByte > 0 {
		b.firstByte.Observe(sess.FirstByte.Seconds())
	}
	if err != nil {
		if i := reasonIndex(l7.UpstreamReason(err)); i >= 0 {
			b.errors[i].Inc()
		}
	}
	if s.routes != nil {
		s.routeDone(sess)
	}
}

// backendOf returns the counters of the backend the request went to
// last, or the service's own for a request that reached none.
func (s *HTTPService) backendOf(sess *l7.Session) *Backend {
	if n := len(sess.Tried); n > 0 {
		if p := sess.Tried[n-1]; p.Backend != nil {
			if b, ok := p.Backend.Ext().(*Backend); ok {
				return b
			}
		}
	}
	return s.none
}

func reasonIndex(reason string) int {
	for i, r := range upstreamReasons {
		if r == reason {
			return i
		}
	}
	return -1
}

// sample records the totals of the service's backends.
func (s *HTTPService) sample(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, be := range s.all() {
		req, errs := be.totals()
		be.history.add(sample{at: now, requests: req, errors: errs})
	}
}

// all returns every backend's handle, the service's own included. Call
// with mu held.
func (s *HTTPService) all() []*Backend {
	out := make([]*Backend, 0, len(s.backends)+1)
	if s.none != nil {
		out = append(out, s.none)
	}
	for _, be := range s.backends {
		out = append(out, be)
	}
	return out
}

func (s *HTTPService) rates() (total Rates, backends map[string]Rates, inFlight int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	backends = make(map[string]Rates, len(s.backends))
	for _, be := range s.all() {
		var r Rates
		r.Requests, r.Errors = be.history.rates()
		total.Requests += r.Requests
		total.Errors += r.Errors
		if be != s.none {
			backends[be.addr] = r
		}
	}
	return total, backends, s.inFlight.Load()
}

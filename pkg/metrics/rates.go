package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The status page's request and error rates are averages over rateWindow,
// from samples taken every sampleEvery.
const (
	sampleEvery = 5 * time.Second
	rateWindow  = time.Minute
	ringSize    = int(rateWindow/sampleEvery) + 1
)

// sample is a backend's request and error totals at one time.
type sample struct {
	at               time.Time
	requests, errors float64
}

// history is a ring of samples.
type history struct {
	ring [ringSize]sample
	n    int // samples taken
}

func (h *history) add(s sample) {
	h.ring[h.n%ringSize] = s
	h.n++
}

// rates returns the request and error rates per second between the
// oldest and the newest sample: zero until there are two.
func (h *history) rates() (requests, errs float64) {
	if h.n < 2 {
		return 0, 0
	}
	newest := h.ring[(h.n-1)%ringSize]
	oldest := h.ring[max(0, h.n-ringSize)%ringSize]
	dt := newest.at.Sub(oldest.at).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	return (newest.requests - oldest.requests) / dt, (newest.errors - oldest.errors) / dt
}

// totals reads a backend's request and error counts (errors: status class
// 5xx, or no response at all).
func (b *Backend) totals() (requests, errs float64) {
	for i, c := range b.requests {
		v := counterValue(c)
		requests += v
		if statusClasses[i] == "none" || statusClasses[i] == "5xx" {
			errs += v
		}
	}
	return requests, errs
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}

// Sample records every backend's totals now; Run calls it every few
// seconds, and tests may call it directly.
func (m *Metrics) Sample(now time.Time) {
	m.mu.Lock()
	services := make([]*HTTPService, 0, len(m.services))
	for _, s := range m.services {
		services = append(services, s)
	}
	m.mu.Unlock()
	for _, s := range services {
		s.sample(now)
	}
}

// Run samples the rates until ctx is done.
func (m *Metrics) Run(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	m.Sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.Sample(now)
		}
	}
}

// Rates are a service's or a backend's recent rates, per second.
type Rates struct {
	Requests, Errors float64
}

// ServiceRates returns the recent rates of service and of each of its
// backends by address (the requests no backend served count only in the
// service's), and its requests in flight.
func (m *Metrics) ServiceRates(service string) (total Rates, backends map[string]Rates, inFlight int64) {
	m.mu.Lock()
	s := m.services[service]
	m.mu.Unlock()
	if s == nil {
		return Rates{}, nil, 0
	}
	return s.rates()
}

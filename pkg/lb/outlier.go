package lb

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrEjected is the Reason of the HealthChanged event that takes a
// backend out of selection for its consecutive failures (passive health).
// It is wrapped with the count and the ejection's length.
var ErrEjected = errors.New("ejected by passive health")

// Defaults of OutlierDetection's zero fields.
const (
	DefaultConsecutiveGatewayFailures = 5
	DefaultBaseEjection               = 30 * time.Second
	DefaultMaxEjection                = 5 * time.Minute
	DefaultMaxEjectionPercent         = 50
)

// OutlierDetection configures passive health: a backend that fails the
// requests sent to it is ejected, taken out of selection for a while,
// without waiting for an active check to notice.
//
// The proxy reports each request's outcome with Backend.Report. After
// ConsecutiveGatewayFailures gateway failures in a row (or Consecutive5xx
// server errors in a row, when set) the backend is ejected for
// BaseEjection times the number of its recent ejections, at most
// MaxEjection. It returns when that time is up, or earlier when an active
// health check that started after the ejection passes. An ejection is a
// health state: observers hear HealthChanged with Healthy false, Ejected
// true and a Reason wrapping ErrEjected, then HealthChanged with Healthy
// true on return; Status reports Ejected, EjectedUntil and Ejections.
//
// At most MaxEjectionPercent of the pool's backends are ejected at once:
// (ejected+1) × 100 ≤ MaxEjectionPercent × backends, so a pool of one
// backend is never ejected at the default 50%. A backend whose ejection
// the cap refuses keeps serving; the next ejection is tried after as many
// failures again.
//
// The count behind the multiplier drops by one for every BaseEjection a
// backend spends back in service, so a backend that failed once a week
// ago starts again from BaseEjection.
type OutlierDetection struct {
	// ConsecutiveGatewayFailures is how many gateway failures in a row
	// (OutcomeGatewayFailure) eject a backend; 0 means 5.
	ConsecutiveGatewayFailures int
	// Consecutive5xx is how many server errors in a row, gateway
	// failures included, eject a backend; 0 turns this rule off.
	Consecutive5xx int
	// BaseEjection is the length of a first ejection; 0 means 30s.
	BaseEjection time.Duration
	// MaxEjection caps one ejection's length; 0 means 5 minutes (or
	// BaseEjection, if that is longer).
	MaxEjection time.Duration
	// MaxEjectionPercent caps the share of the pool ejected at once, 1
	// to 100; 0 means 50.
	MaxEjectionPercent int
}

// normalise returns o with its defaults filled in, or an error naming the
// bad value.
func (o OutlierDetection) normalise() (OutlierDetection, error) {
	switch {
	case o.ConsecutiveGatewayFailures < 0, o.Consecutive5xx < 0:
		return o, fmt.Errorf("outlier detection: consecutive failures must not be negative: gateway %d, 5xx %d",
			o.ConsecutiveGatewayFailures, o.Consecutive5xx)
	case o.BaseEjection < 0, o.MaxEjection < 0:
		return o, fmt.Errorf("outlier detection: ejection times must not be negative: base %v, max %v",
			o.BaseEjection, o.MaxEjection)
	case o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100:
		return o, fmt.Errorf("outlier detection: max ejection percent %d: must be 1 to 100, or 0 for %d",
			o.MaxEjectionPercent, DefaultMaxEjectionPercent)
	}
	if o.ConsecutiveGatewayFailures == 0 {
		o.ConsecutiveGatewayFailures = DefaultConsecutiveGatewayFailures
	}
	if o.BaseEjection == 0 {
		o.BaseEjection = DefaultBaseEjection
	}
	if o.MaxEjection == 0 {
		o.MaxEjection = max(DefaultMaxEjection, o.BaseEjection)
	}
	if o.MaxEjectionPercent == 0 {
		o.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	return o, nil
}

// Outcome is what became of one request sent to a backend, as the proxy
// reports it with Backend.Report.
type Outcome uint8

const (
	// OutcomeSuccess: the backend answered, with anything but a server
	// error. It resets the backend's consecutive failure counts.
	OutcomeSuccess Outcome = iota
	// OutcomeGatewayFailure: the backend could not be reached (connection
	// refused, connect timeout), reset or closed the connection before a
	// response, timed out, or answered 502, 503 or 504.
	OutcomeGatewayFailure
	// OutcomeServerError: the backend answered another 5xx status (500,
	// 501, 505…). It counts towards Consecutive5xx only, and ends a run
	// of gateway failures.
	OutcomeServerError
)

// String names the outcome, for logs and metric labels.
func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeGatewayFailure:
		return "gateway failure"
	case OutcomeServerError:
		return "server error"
	}
	return "unknown"
}

// OutcomeOf classifies a response status from a backend: 502, 503 and 504
// are gateway failures, other 5xx server errors, anything else a success.
func OutcomeOf(status int) Outcome {
	switch {
	case status == 502 || status == 503 || status == 504:
		return OutcomeGatewayFailure
	case status >= 500 && status <= 599:
		return OutcomeServerError
	}
	return OutcomeSuccess
}

// ejector is the LoadBalancer's side of passive health, reached from a
// Backend's state on the slow path of Report.
type ejector interface {
	eject(addr string, st *backendState, cause string, count int64)
}

// passive is one LoadBalancer's outlier detection, shared by the states
// of its backends.
type passive struct {
	cfg OutlierDetection
	lb  ejector
}

// failureCounters are the consecutive failure counts Report keeps. They
// sit on their own cache line: a failing backend's reports write them
// while every selection reads the usable flag.
type failureCounters struct {
	gateway atomic.Int64
	server  atomic.Int64 // 5xx, gateway failures included
	_       [48]byte
}

// Report records the outcome of one request sent to b, for passive health
// (Options.Outlier). The proxy calls it once per request that reached the
// point of choosing b; a request the client abandoned is not the
// backend's fault and is not reported. It is a few atomic operations and
// allocates nothing, except on the rare call that ejects b. It is a no-op
// without Options.Outlier, and on a Backend that did not come from a
// LoadBalancer.
func (b *Backend) Report(o Outcome) {
	st := b.state
	if st == nil || st.passive == nil {
		return
	}
	p, c := st.passive, &st.fails
	switch o {
	case OutcomeSuccess:
		// Loads first: a healthy backend's successes then only read
		// the line, rather than bouncing it between cores.
		if c.gateway.Load() != 0 {
			c.gateway.Store(0)
		}
		if p.cfg.Consecutive5xx > 0 && c.server.Load() != 0 {
			c.server.Store(0)
		}
	case OutcomeGatewayFailure:
		// Every further run of the threshold tries again, so a backend
		// the percentage cap kept in service is not forgotten, while
		// most of a failing run's reports stay off the slow path.
		if n := c.gateway.Add(1); n%int64(p.cfg.ConsecutiveGatewayFailures) == 0 {
			p.lb.eject(b.Addr, st, "gateway failures", n)
			return
		}
		if p.cfg.Consecutive5xx > 0 {
			if n := c.server.Add(1); n%int64(p.cfg.Consecutive5xx) == 0 {
				p.lb.eject(b.Addr, st, "server errors", n)
			}
		}
	case OutcomeServerError:
		if c.gateway.Load() != 0 {
			c.gateway.Store(0)
		}
		if p.cfg.Consecutive5xx > 0 {
			if n := c.server.Add(1); n%int64(p.cfg.Consecutive5xx) == 0 {
				p.lb.eject(b.Addr, st, "server errors", n)
			}
		}
	}
}

// eject takes the backend at addr out of selection for its failures, if
// it is in service and the percentage cap allows.
func (lb *LoadBalancer[A]) eject(addr string, st *backendState, cause string, count int64) {
	lb.mu.Lock()
	if lb.states[addr] != st || !st.usable.Load() || !lb.mayEject() {
		lb.mu.Unlock()
		return
	}
	cfg := lb.passive.cfg
	now := lb.clock.Now()
	if !st.returnedAt.IsZero() {
		st.streak -= int(now.Sub(st.returnedAt) / cfg.BaseEjection)
		st.streak = max(st.streak, 0)
	}
	st.streak++
	st.ejections++
	d := min(time.Duration(st.streak)*cfg.BaseEjection, cfg.MaxEjection)
	st.ejected, st.ejectedUntil = true, now.Add(d)
	st.ejectSeq++
	st.ejectErr = fmt.Errorf("%w for %v (ejection %d): %d consecutive %s", ErrEjected, d, st.ejections, count, cause)
	st.fails.gateway.Store(0)
	st.fails.server.Store(0)
	seq := st.ejectSeq
	st.ejectTimer = lb.clock.AfterFunc(d, func() { lb.ejectionOver(addr, st, seq) })
	lb.publish(st, now)
	lb.queue(HealthChanged, lb.currentBackend(addr), st, now)
	lb.mu.Unlock()
	lb.deliver()
}

// mayEject reports whether one more backend may be ejected under
// MaxEjectionPercent. Call with mu held.
func (lb *LoadBalancer[A]) mayEject() bool {
	ejected := 0
	for _, st := range lb.states {
		if st.ejected {
			ejected++
		}
	}
	return (ejected+1)*100 <= lb.passive.cfg.MaxEjectionPercent*len(lb.states)
}

// ejectionOver returns a backend whose ejection seq ran its time.
func (lb *LoadBalancer[A]) ejectionOver(addr string, st *backendState, seq uint64) {
	lb.mu.Lock()
	if lb.states[addr] != st || !st.ejected || st.ejectSeq != seq {
		lb.mu.Unlock()
		return
	}
	now := lb.clock.Now()
	wasUp := st.up()
	lb.unEject(st, now)
	ramp := lb.publish(st, now)
	if st.up() != wasUp {
		lb.queue(HealthChanged, lb.currentBackend(addr), st, now)
	}
	if ramp {
		lb.reweigh(now)
	}
	lb.mu.Unlock()
	lb.deliver()
}

// unEject ends st's ejection; the caller publishes. Call with mu held.
func (lb *LoadBalancer[A]) unEject(st *backendState, now time.Time) {
	st.ejected, st.ejectedUntil, st.ejectErr = false, time.Time{}, nil
	st.returnedAt = now
	if st.ejectTimer != nil {
		st.ejectTimer.Stop()
		st.ejectTimer = nil
	}
	st.fails.gateway.Store(0)
	st.fails.server.Store(0)
}

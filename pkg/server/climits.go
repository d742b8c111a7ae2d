package server

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/limit"
	"github.com/weir-lb/weir/pkg/metrics"
)

// listenerLimit is one configured listener's connection limit, shared by
// its SO_REUSEPORT sockets: its gate (nil without max_connections) and
// the times its accept loops found it full.
type listenerLimit struct {
	gate    *limit.Gate
	limited atomic.Uint64
}

// buildLimits gives an HTTP service its overload protection: the
// listeners' connection gates and the client limits of its limits key.
// The server always has ClientLimits, which then count the 431s of the
// default head limits; unconfigured limits cost a comparison.
func (s *Server) buildLimits(svc *service) error {
	sc := svc.cfg
	svc.listenerLimits = make([]*listenerLimit, len(sc.Listeners))
	for i, lc := range sc.Listeners {
		ll := &listenerLimit{}
		if lc.MaxConnections > 0 {
			var err error
			if ll.gate, err = limit.NewGate(lc.MaxConnections); err != nil {
				return err
			}
		}
		svc.listenerLimits[i] = ll
	}
	cl := &l7.ClientLimits{}
	if l := sc.Limits; l != nil {
		svc.http.Limits = h1.Limits{MaxHeaderBytes: l.MaxHeaderBytes, MaxHeaders: l.MaxHeaders}
		cl.MaxRequestBody = l.MaxRequestBody
		if l.Rate != nil {
			rl, err := limit.NewRateLimiter(limit.RateConfig{Rate: *l.Rate, Key: l.ClientKey, MaxClients: l.MaxClients})
			if err != nil {
				return err
			}
			cl.Rate = rl
		}
		if l.MaxClientConnections > 0 {
			conns, err := limit.NewConnLimiter(limit.ConnConfig{Max: l.MaxClientConnections, Key: l.ClientKey})
			if err != nil {
				return err
			}
			cl.Conns = conns
		}
	}
	if s.clock != nil {
		cl.Now = s.clock.Now
	}
	svc.http.ClientLimits = cl
	if s.metrics != nil {
		src := metrics.LimitSource{Service: sc.Name, Limits: cl}
		for i, ll := range svc.listenerLimits {
			src.Listeners = append(src.Listeners, metrics.ListenerSource{Listener: sc.Listeners[i].Addr, Gate: ll.gate, Limited: &ll.limited})
		}
		s.metrics.WatchLimits(src)
	}
	return nil
}

// rateSweepEvery is how often the rate limiters forget clients whose
// buckets are full again, which keeps weir_rate_limit_clients close to
// the clients actually held back. Memory is bounded without it.
const rateSweepEvery = 10 * time.Second

// sweepRateLimits sweeps every service's rate limiter until ctx ends.
func (s *Server) sweepRateLimits(ctx context.Context) {
	var limiters []*limit.RateLimiter
	for _, svc := range s.services {
		if cl := svc.http.ClientLimits; cl != nil && cl.Rate != nil {
			limiters = append(limiters, cl.Rate)
		}
	}
	if len(limiters) == 0 {
		return
	}
	tick := time.NewTicker(rateSweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for _, rl := range limiters {
				rl.Sweep(time.Now())
			}
		}
	}
}

// limitsStatus reports an HTTP service's configured limits and what
// each refused, for the admin status; nil for any other.
func (s *Server) limitsStatus(sc *config.Service) *admin.LimitsStatus {
	var svc *service
	for _, x := range s.services {
		if x.cfg == sc {
			svc = x
		}
	}
	if svc == nil || svc.http.ClientLimits == nil {
		return nil
	}
	cl := svc.http.ClientLimits
	st := &admin.LimitsStatus{Limited: map[string]uint64{}, MaxHeaderBytes: h1.DefaultMaxHeaderBytes, MaxHeaders: h1.DefaultMaxHeaders}
	for _, l := range l7.Limits {
		st.Limited[l.String()] = cl.Limited(l)
	}
	if l := sc.Limits; l != nil {
		st.MaxRequestBody, st.MaxHeaderBytes, st.MaxHeaders = l.MaxRequestBody, l.MaxHeaderBytes, l.MaxHeaders
		st.MaxClientConnections, st.MaxClients = l.MaxClientConnections, l.MaxClients
		if l.Rate != nil {
			st.Rate = l.Rate.String()
		}
	}
	if cl.Rate != nil {
		st.RateClients = cl.Rate.Len()
	}
	for i, ll := range svc.listenerLimits {
		if ll.gate != nil {
			st.Listeners = append(st.Listeners, admin.ListenerLimitStatus{Addr: sc.Listeners[i].Addr,
				MaxConnections: ll.gate.Max(), Connections: ll.gate.InUse(), Limited: ll.limited.Load()})
		}
	}
	return st
}

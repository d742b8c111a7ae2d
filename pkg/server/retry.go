package server

import (
	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/retry"
)

// addRouteRetry records a route's own retry policy under its service,
// for the status.
func (s *Server) addRouteRetry(service string, p *retry.Policy) {
	if s.routeRetries == nil {
		s.routeRetries = make(map[string][]*retry.Policy)
	}
	s.routeRetries[service] = append(s.routeRetries[service], p)
}

// retryStatus sums the counts of the retry policies that govern t's
// requests and are shown on it: a named pool's on the pool; an inline
// upstream's on its service, with the service's routes' own. Nil when
// none does.
func (s *Server) retryStatus(t target) *admin.RetryStatus {
	var policies []*retry.Policy
	switch up := t.cfg.Upstream; {
	case t.cfg.Kind == kindPool:
		if pl := s.pools[up]; pl != nil && pl.retry != nil {
			policies = append(policies, pl.retry)
		}
	case t.cfg.Kind == config.KindHTTPProxy:
		if up != nil && up.Name == "" {
			if pl := s.pools[up]; pl != nil && pl.retry != nil {
				policies = append(policies, pl.retry)
			}
		}
		policies = append(policies, s.routeRetries[t.cfg.Name]...)
	}
	if len(policies) == 0 {
		return nil
	}
	out := &admin.RetryStatus{Retries: make(map[string]uint64, retry.NumReasons-1)}
	for _, r := range retry.Reasons() {
		out.Retries[r.String()] = 0
	}
	for _, p := range policies {
		st := p.Stats()
		for _, r := range retry.Reasons() {
			out.Retries[r.String()] += st.Retries[r]
		}
		out.Total += st.Total
		out.BudgetExhausted += st.BudgetExhausted
	}
	return out
}

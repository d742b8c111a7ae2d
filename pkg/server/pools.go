package server

import (
	"cmp"
	"fmt"
	"net/http"

	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/metrics"
	"github.com/weir-lb/weir/pkg/proxyproto"
	"github.com/weir-lb/weir/pkg/retry"
)

// kindPool is the kind runtime control and the status page give a named
// pool of upstreams:, beside the configured kinds of services.
const kindPool config.Kind = "pool"

// pool is one set of backends and the load balancer that keeps it fresh:
// a named pool of upstreams:, built once and shared by every service and
// route that names it (one set of health checks, one selector), or a
// service's inline upstream.
type pool struct {
	// name is the pool's name, or its service's for an inline upstream:
	// the name its backends go by in metrics, logs and the admin API.
	name string
	cfg  *config.Upstream
	bal  balancer
	// retry is the pool's retry policy, shared by every route and
	// service sending requests to it (one budget); nil without one.
	retry *retry.Policy
}

// named says the pool is one of upstreams:, rather than an inline block.
func (pl *pool) named() bool { return pl.cfg.Name != "" }

// poolFor returns the pool of up, building its load balancer on first
// use. owner names an inline upstream's pool: the service that has it.
func (s *Server) poolFor(up *config.Upstream, owner string) (*pool, error) {
	if pl := s.pools[up]; pl != nil {
		return pl, nil
	}
	name := cmp.Or(up.Name, owner)
	var hs *metrics.HTTPService
	switch {
	case s.metrics == nil:
	case up.Name != "":
		hs = s.metrics.Pool(name)
	default:
		hs = s.metrics.HTTPService(name)
	}
	opts, err := s.lbOptions(name, up, hs)
	if err != nil {
		return nil, poolError(up, err)
	}
	bal, err := newLoadBalancer(up, opts)
	if err != nil {
		return nil, poolError(up, err)
	}
	pl := &pool{name: name, cfg: up, bal: bal}
	if up.Retry != nil {
		pl.retry = up.Retry.Clone()
	}
	if s.metrics != nil {
		s.metrics.WatchBalancer(name, bal.Status)
		s.watchQueue(name, bal)
	}
	s.pools[up] = pl
	s.poolOrder = append(s.poolOrder, pl)
	return pl, nil
}

// poolError says which pool err is about when it is a named one (an
// inline upstream's errors already name their service).
func poolError(up *config.Upstream, err error) error {
	if up.Name == "" {
		return err
	}
	return fmt.Errorf("upstream %q (%s): %w", up.Name, up.Pos, err)
}

// balancedFrom builds a Proxy selecting from pl, with the pool's
// connection settings, overridden by t where a route sets timeouts.
func (s *Server) balancedFrom(pl *pool, t config.RouteTimeouts) (*l7.Balanced, error) {
	up := pl.cfg
	tmpl, err := s.peerTemplate(up)
	if err != nil {
		return nil, poolError(up, err)
	}
	if t.Connect > 0 {
		tmpl.Timeouts.Connect = t.Connect
	}
	if t.Read > 0 {
		tmpl.Timeouts.Read = t.Read
	}
	if t.Write > 0 {
		tmpl.Timeouts.Write = t.Write
	}
	tmpl.Retry = pl.retry
	return &l7.Balanced{LB: pl.bal, Template: tmpl, Host: up.Host, Key: up.HashKey, Sticky: sticky(up.Sticky),
		Slots: slotSelector(pl)}, nil
}

// sticky is a pool's cookie affinity; nil without one.
func sticky(st *config.Sticky) *l7.Sticky {
	if st == nil {
		return nil
	}
	out := &l7.Sticky{Cookie: st.Cookie, TTL: st.TTL, Secure: st.Secure, HTTPOnly: st.HTTPOnly, Secret: st.Secret}
	switch st.SameSite {
	case config.SameSiteLax:
		out.SameSite = http.SameSiteLaxMode
	case config.SameSiteStrict:
		out.SameSite = http.SameSiteStrictMode
	case config.SameSiteNone:
		out.SameSite = http.SameSiteNoneMode
	}
	return out
}

// proxyVersion is the PROXY protocol version a pool sends; 0: none.
func proxyVersion(v config.ProxyProtocolVersion) proxyproto.Version {
	switch v {
	case config.ProxyV1:
		return proxyproto.V1
	case config.ProxyV2:
		return proxyproto.V2
	}
	return 0
}

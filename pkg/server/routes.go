package server

import (
	"fmt"
	"slices"

	"github.com/weir-lb/weir/pkg/compress"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/route"
)

// routedProxy builds the routing table of an http_proxy service with
// routes, and the pools its routes send requests to. Each route that
// proxies gets its own selection from its pool, carrying the route's
// timeouts and compression; the pool's load balancer is shared.
func (s *Server) routedProxy(sc *config.Service) (*route.Table, []*pool, error) {
	routes := make([]route.Route, len(sc.Routes))
	proxies := make([]l7.Proxy, len(sc.Routes))
	var pools []*pool
	for i := range sc.Routes {
		rc := &sc.Routes[i]
		routes[i] = rc.Route
		p, pl, err := s.routeProxy(rc, sc.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("route %q (%s): %w", rc.Route.Name, rc.Pos, err)
		}
		proxies[i] = p
		if pl != nil && !slices.Contains(pools, pl) {
			pools = append(pools, pl)
		}
	}
	t, err := route.New(routes, proxies)
	if err != nil {
		return nil, nil, err
	}
	return t, pools, nil
}

// routeProxy builds what serves one route's requests: nil (and no pool)
// for a route that answers itself.
func (s *Server) routeProxy(rc *config.Route, service string) (l7.Proxy, *pool, error) {
	name := rc.Route.Upstream
	var p l7.Proxy
	var pl *pool
	if name != "" {
		up := s.cfg.Upstreams[name]
		if up == nil {
			return nil, nil, fmt.Errorf("upstream %q is not defined under upstreams", name)
		}
		var err error
		if pl, err = s.poolFor(up, service); err != nil {
			return nil, nil, err
		}
		b, err := s.balancedFrom(pl, rc.Timeouts)
		if err != nil {
			return nil, nil, err
		}
		if rc.Retry != nil {
			// The route's own policy and budget, instead of its pool's.
			b.Template.Retry = rc.Retry.Clone()
			s.addRouteRetry(service, b.Template.Retry)
		}
		p = b
		quiet := !up.ForwardedHeaders
		switch {
		case rc.Compress != nil:
			p = &compressed{Balanced: b, Policy: rc.Compress, quiet: quiet}
		case quiet:
			p = &unforwarded{b}
		}
	}
	return p, pl, nil
}

// compressed is a route's selection with response compression.
type compressed struct {
	*l7.Balanced
	*compress.Policy
	// quiet says the pool has forwarded_headers: false.
	quiet bool
}

var _ l7.ResponseBodyFilter = compressed{}

// RequestFilter carries the pool's forwarded_headers: false to the
// request, which the server's setting cannot: the service's other routes
// may go to pools that want the fields.
func (c *compressed) RequestFilter(s *l7.Session) (bool, error) {
	if c.quiet {
		s.NoForwardedHeaders = true
	}
	return false, nil
}

// unforwarded is a route's selection from a pool with
// forwarded_headers: false.
type unforwarded struct{ *l7.Balanced }

// RequestFilter leaves the request's X-Forwarded-* fields as the client
// sent them.
func (unforwarded) RequestFilter(s *l7.Session) (bool, error) {
	s.NoForwardedHeaders = true
	return false, nil
}

var (
	_ l7.RequestFilter = (*compressed)(nil)
	_ l7.RequestFilter = unforwarded{}
)

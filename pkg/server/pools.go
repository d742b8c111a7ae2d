package server

import (
	"fmt"

	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
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
	// named says the pool is one of upstreams:.
	named bool
}

// poolNames maps each named pool's configuration to its name.
func poolNames(cfg *config.Config) map[*config.Upstream]string {
	names := make(map[*config.Upstream]string, len(cfg.Upstreams))
	for name, up := range cfg.Upstreams {
		names[up] = name
	}
	return names
}

// poolFor returns the pool of up, building its load balancer on first
// use. owner names an inline upstream's pool: the service that has it.
func (s *Server) poolFor(up *config.Upstream, owner string) (*pool, error) {
	if pl := s.pools[up]; pl != nil {
		return pl, nil
	}
	name, named := s.poolName[up]
	if !named {
		name = owner
	}
	opts, err := s.lbOptions(name, up, true)
	if err != nil {
		return nil, poolError(name, named, up, err)
	}
	bal, err := newLoadBalancer(up, opts)
	if err != nil {
		return nil, poolError(name, named, up, err)
	}
	pl := &pool{name: name, cfg: up, bal: bal, named: named}
	if s.metrics != nil {
		s.metrics.WatchBalancer(name, bal.Status)
	}
	s.pools[up] = pl
	s.poolOrder = append(s.poolOrder, pl)
	return pl, nil
}

// poolError says which pool err is about when it is a named one (an
// inline upstream's errors already name their service).
func poolError(name string, named bool, up *config.Upstream, err error) error {
	if !named {
		return err
	}
	return fmt.Errorf("upstream %q (%s): %w", name, up.Pos, err)
}

// balancedFrom builds a Proxy selecting from pl, with the pool's
// connection settings, overridden by t where a route sets timeouts.
func (s *Server) balancedFrom(pl *pool, t config.RouteTimeouts) (*l7.Balanced, error) {
	up := pl.cfg
	tmpl, err := s.peerTemplate(up)
	if err != nil {
		return nil, poolError(pl.name, pl.named, up, err)
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
	return &l7.Balanced{LB: pl.bal, Template: tmpl, Host: up.Host, Key: up.HashKey}, nil
}

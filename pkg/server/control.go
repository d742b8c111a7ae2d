package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
)

var _ admin.State = (*Server)(nil)

// controlUpdateTimeout bounds the discovery a change to a static list
// triggers; a static list answers at once, so this only guards against
// a wedged Discovery.
const controlUpdateTimeout = 5 * time.Second

// control is the server's runtime control: what the admin API reads and
// changes. Its mutex makes changes one at a time, so that a change's
// checks (is the backend there?) and its effect are one step, and a
// Status never sees a change half done.
type control struct {
	mu      sync.Mutex
	started time.Time
}

// controllable is what runtime control needs of any *lb.LoadBalancer[A].
type controllable interface {
	Status() []lb.Status
	Update(context.Context) error
	SetWeight(addr string, weight int) error
	SetDrained(addr string, drained bool) error
	ClearOverride(addr string) error
	Overrides() map[string]lb.Override
	Seed(addr string, healthy bool) error
	Discovery() lb.Discovery
}

// target is one configured service as runtime control sees it.
type target struct {
	cfg *config.Service
	lb  controllable // nil for a respond service
	l4  *l4Service   // nil unless kind: l4
}

// static returns the service's editable backend list, or nil when its
// backends are discovered (or it has none).
func (t target) static() *lb.Static {
	if t.lb == nil {
		return nil
	}
	st, _ := t.lb.Discovery().(*lb.Static)
	return st
}

// markStarted records when the server started serving, for Status.
func (s *Server) markStarted(at time.Time) {
	s.ctl.mu.Lock()
	s.ctl.started = at
	s.ctl.mu.Unlock()
}

// targets lists every service in configuration order, then every named
// pool in the order services first used them.
func (s *Server) targets() []target {
	out := make([]target, 0, len(s.cfg.Services)+len(s.poolOrder))
	for i := range s.cfg.Services {
		if t, ok := s.targetOf(&s.cfg.Services[i]); ok {
			out = append(out, t)
		}
	}
	for _, pl := range s.poolOrder {
		if pl.named() {
			out = append(out, poolTarget(pl))
		}
	}
	return out
}

// poolTarget is a named pool as runtime control sees it: a service-like
// entry, kind pool, whose backends every service naming it shares.
func poolTarget(pl *pool) target {
	t := target{cfg: &config.Service{Name: pl.name, Kind: kindPool, Upstream: pl.cfg}}
	if c, ok := pl.bal.(controllable); ok {
		t.lb = c
	}
	return t
}

// targetOf finds what runs the configured service sc.
func (s *Server) targetOf(sc *config.Service) (target, bool) {
	for _, svc := range s.services {
		if svc.cfg == sc {
			t := target{cfg: sc}
			if sc.Upstream != nil && len(svc.pools) == 1 {
				t.lb, _ = svc.pools[0].bal.(controllable)
			}
			return t, true
		}
	}
	for _, svc := range s.l4 {
		if svc.cfg == sc {
			return target{cfg: sc, lb: svc.lb, l4: svc}, true
		}
	}
	return target{}, false
}

// target finds the service or named pool called name.
func (s *Server) target(name string) (target, error) {
	for _, t := range s.targets() {
		if t.cfg.Name == name {
			return t, nil
		}
	}
	return target{}, fmt.Errorf("%w: %q", admin.ErrUnknownService, name)
}

// balanced finds the service called name and checks it has backends.
func (s *Server) balanced(name string) (target, error) {
	t, err := s.target(name)
	if err != nil {
		return t, err
	}
	if t.lb == nil {
		if pools := s.routedPools(t.cfg); len(pools) > 0 {
			return t, fmt.Errorf("%w: service %q routes its requests to pools %s, which hold its backends; name the pool instead (/api/v1/services/POOL/backends/…)",
				admin.ErrNotSupported, name, strings.Join(pools, ", "))
		}
		return t, fmt.Errorf("%w: service %q is kind %s and has no backends", admin.ErrNotSupported, name, t.cfg.Kind)
	}
	return t, nil
}

// routedPools are the quoted names of the pools a routed service sends
// requests to, in the order its routes first name them.
func (s *Server) routedPools(sc *config.Service) []string {
	var names []string
	for _, svc := range s.services {
		if svc.cfg != sc || len(sc.Routes) == 0 {
			continue
		}
		for _, pl := range svc.pools {
			names = append(names, strconv.Quote(pl.name))
		}
	}
	return names
}

// parseBackend normalises a backend address as pkg/lb does; an l4
// service's backends must be IP addresses, which the kernel forwards to.
func parseBackend(t target, backend string) (string, error) {
	addr, err := lb.ParseAddr(backend)
	if err != nil {
		return "", fmt.Errorf("%w: %w", admin.ErrBadRequest, err)
	}
	if t.l4 != nil {
		if _, err := netip.ParseAddrPort(addr); err != nil {
			return "", fmt.Errorf("%w: %s: an l4 service's backends are ip:port, not names or Unix sockets", admin.ErrBadRequest, backend)
		}
	}
	return addr, nil
}

// present finds backend among t's current backends, by normalised address.
func present(t target, backend string) (string, error) {
	addr, err := parseBackend(t, backend)
	if err != nil {
		return "", err
	}
	for _, st := range t.lb.Status() {
		if st.Backend.Addr == addr {
			return addr, nil
		}
	}
	return "", fmt.Errorf("%w: service %q has no backend %s", admin.ErrUnknownBackend, t.cfg.Name, addr)
}

// checkWeight refuses a weight outside 1 to lb.MaxWeight.
func checkWeight(weight int) error {
	if weight < 1 || weight > lb.MaxWeight {
		return fmt.Errorf("%w: weight %d: must be 1 to %d", admin.ErrBadRequest, weight, lb.MaxWeight)
	}
	return nil
}

// SetEnabled drains (false) or re-enables (true) a backend of any service
// with backends. The drain is an operator override: it outlives DNS
// refreshes, reloads and upgrades until the backend is enabled again.
func (s *Server) SetEnabled(service, backend string, enabled bool) error {
	return s.override(service, backend, func(bal controllable, addr string) error {
		return bal.SetDrained(addr, !enabled)
	})
}

// SetWeight sets a backend's weight, overriding the configured or
// discovered one, until the next SetWeight.
func (s *Server) SetWeight(service, backend string, weight int) error {
	if err := checkWeight(weight); err != nil {
		return err
	}
	return s.override(service, backend, func(bal controllable, addr string) error {
		return bal.SetWeight(addr, weight)
	})
}

// override applies set to a present backend of service, then brings an
// L4 service's BPF tables up to date.
func (s *Server) override(service, backend string, set func(bal controllable, addr string) error) error {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	t, err := s.balanced(service)
	if err != nil {
		return err
	}
	addr, err := present(t, backend)
	if err != nil {
		return err
	}
	if err := set(t.lb, addr); err != nil {
		return err
	}
	return s.syncDataPlane(t)
}

// AddBackend adds a backend to a service with static backends; it starts
// with the health check's initial verdict (initially:), like a backend
// of the configuration.
func (s *Server) AddBackend(service, backend string, weight int) error {
	if err := checkWeight(weight); err != nil {
		return err
	}
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	t, static, err := s.staticTarget(service, "add")
	if err != nil {
		return err
	}
	addr, err := parseBackend(t, backend)
	if err != nil {
		return err
	}
	// A removed backend forgot its overrides; clearing again covers one
	// set before a restart that could not apply them.
	if err := t.lb.ClearOverride(addr); err != nil {
		return err
	}
	if err := static.Add(lb.Backend{Addr: addr, Weight: weight}); err != nil {
		if errors.Is(err, lb.ErrDuplicate) {
			return fmt.Errorf("%w: %s is already a backend of service %q", admin.ErrBadRequest, addr, service)
		}
		return fmt.Errorf("%w: %w", admin.ErrBadRequest, err)
	}
	return s.refresh(t)
}

// RemoveBackend removes a backend from a service with static backends,
// with its overrides. Requests in flight to it finish.
func (s *Server) RemoveBackend(service, backend string) error {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	t, static, err := s.staticTarget(service, "remove")
	if err != nil {
		return err
	}
	addr, err := parseBackend(t, backend)
	if err != nil {
		return err
	}
	if err := static.Remove(addr); err != nil {
		if errors.Is(err, lb.ErrUnknownBackend) {
			return fmt.Errorf("%w: service %q has no backend %s", admin.ErrUnknownBackend, service, addr)
		}
		return err
	}
	if err := t.lb.ClearOverride(addr); err != nil {
		return err
	}
	return s.refresh(t)
}

// staticTarget finds a service whose backend list may be edited.
func (s *Server) staticTarget(service, verb string) (target, *lb.Static, error) {
	t, err := s.balanced(service)
	if err != nil {
		return t, nil, err
	}
	static := t.static()
	if static == nil {
		return t, nil, fmt.Errorf("%w: service %q discovers its backends through DNS; %s them in its DNS records", admin.ErrNotSupported, service, verb)
	}
	return t, static, nil
}

// refresh makes t's load balancer read its edited list now, rather than
// when its runner next looks, so that the change routes requests (and
// reaches the BPF tables) before the caller returns.
func (s *Server) refresh(t target) error {
	ctx, cancel := context.WithTimeout(context.Background(), controlUpdateTimeout)
	defer cancel()
	if err := t.lb.Update(ctx); err != nil {
		return fmt.Errorf("apply the change to service %q: %w", t.cfg.Name, err)
	}
	return s.syncDataPlane(t)
}

// syncDataPlane writes an l4 service's BPF table now, through the same
// mirror health changes take, once the mirror has published its first
// table; until then that first table, written after the first health
// round, includes the change.
func (s *Server) syncDataPlane(t target) error {
	if t.l4 == nil || t.l4.bpf == nil {
		return nil
	}
	select {
	case <-t.l4.mirror.Published():
	default:
		return nil
	}
	if err := t.l4.mirror.Sync(); err != nil {
		return fmt.Errorf("the change routes new userspace decisions, but writing the BPF table of service %q failed (retried with the next change): %w", t.cfg.Name, err)
	}
	return nil
}

// Status reports every service: its backends' weights, health, drains
// and checks, request rates (from Options.Metrics; zero without), and for an l4
// service its data plane, table generation and counters; and the
// interfaces the BPF data plane hooks, when it runs; and the BGP
// speaker's sessions and VIPs, when configured.
func (s *Server) Status() admin.Status {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	out := admin.Status{PID: os.Getpid(), Started: s.ctl.started, Now: time.Now()}
	l4 := s.readL4()
	for _, t := range s.targets() {
		out.Services = append(out.Services, s.serviceStatus(t, l4))
	}
	if s.kernel != nil {
		out.BPF = s.kernel.interfaces()
	}
	if s.bgp != nil {
		out.BGP = s.bgp.status()
	}
	return out
}

func (s *Server) serviceStatus(t target, l4 map[string]l4Reading) admin.ServiceStatus {
	sc := t.cfg
	ss := admin.ServiceStatus{Name: sc.Name, Kind: string(sc.Kind), Listeners: []string{}, Backends: []admin.BackendStatus{}}
	for _, l := range sc.Listeners {
		ss.Listeners = append(ss.Listeners, l.Addr)
	}
	if sc.Upstream != nil {
		ss.Selection = string(sc.Upstream.Selection)
	}
	var rates map[string]metrics.Rates
	if m := s.metrics; m != nil {
		var total metrics.Rates
		total, rates, ss.InFlight = m.ServiceRates(sc.Name)
		ss.RequestRate, ss.ErrorRate = total.Requests, total.Errors
	}
	var counters map[string]*admin.L4Counters
	if t.l4 != nil {
		ss.Listeners = append(ss.Listeners, string(sc.L4.Protocol)+" "+t.l4.vip.String())
		ss.Selection = string(config.SelectMaglev)
		r := l4[sc.Name]
		ss.DataPlane, ss.Generation = r.stats.DataPlane, r.stats.Generation
		totals := r.totals
		ss.L4, counters = &totals, r.backends()
	}
	ss.Limits = s.limitsStatus(sc)
	ss.Retry = s.retryStatus(t)
	if t.lb == nil {
		return ss
	}
	ss.Queue = queueStatus(t.lb)
	for _, b := range t.lb.Status() {
		bs := admin.BackendStatus{
			Addr: b.Backend.Addr, Weight: b.Backend.Weight, Healthy: b.Healthy, Enabled: b.Enabled,
			Drained: b.Drained, InFlight: b.InFlight, LastCheck: b.LastCheck, LastCheckLatency: b.LastLatency,
			Ejected: b.Ejected, EjectedUntil: b.EjectedUntil, Ejections: b.Ejections, Backup: b.Backend.Backup,
			RequestRate: rates[b.Backend.Addr].Requests, ErrorRate: rates[b.Backend.Addr].Errors,
		}
		if b.LastError != nil {
			bs.LastError = b.LastError.Error()
		}
		if counters != nil {
			bs.L4 = counters[b.Backend.Addr]
			if bs.L4 == nil {
				bs.L4 = &admin.L4Counters{}
			}
		}
		if s.metrics == nil {
			ss.InFlight += b.InFlight
		}
		bs.MaxConnections, bs.Connections = b.MaxConnections, b.Slots
		ss.Backends = append(ss.Backends, bs)
	}
	return ss
}

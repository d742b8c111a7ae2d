// Package server runs weir's services from a configuration: it binds the
// listeners (new ones, or sockets inherited through an Opener during an
// upgrade), starts the l4 services on the BPF or the userspace data
// plane, runs each load balancer (discovery and health checks) in the
// background, and stops gracefully (Shutdown) or at once (Close).
// Signals, daemons and upgrades are the command's business (cmd/weir).
//
// A load balancer belongs to a pool: a named pool of the configuration's
// upstreams, built once and shared by every service and route naming it,
// or a service's inline upstream (pools.go). Its backends go by the
// pool's name in metrics, logs and the admin API. An http_proxy service
// with routes serves a route.Table (routes.go) in which each upstream
// route has an l7.Balanced of its own over its pool's load balancer,
// carrying the route's timeouts, wrapped in a compress.Policy when the
// route compresses. Listeners read the PROXY protocol from the peers
// their configuration trusts; pools write it when asked.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/weir-lb/weir/pkg/accesslog"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
	"github.com/weir-lb/weir/pkg/retry"
	"github.com/weir-lb/weir/pkg/reuseport"
	"github.com/weir-lb/weir/pkg/route"
)

// Server hosts the services of one configuration.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	pool     *l7.Pool
	services []*service
	l4       []*l4Service
	// pools are the load balancers of the HTTP services, by their
	// configuration: a named pool's is shared by whoever names it.
	// poolOrder holds them in the order they were built.
	pools     map[*config.Upstream]*pool
	poolOrder []*pool
	// routeRetries holds, by service name, the retry policies of the
	// service's routes that have their own (retry.go).
	routeRetries map[string][]*retry.Policy

	// kernel is the BPF data plane, opened by the first l4 service that
	// wants it; kernelErr says why it could not be.
	kernel    *kernel
	kernelErr error
	degraded  degraded

	ready chan struct{} // closed by Serve once it accepts

	metrics    *metrics.Metrics   // nil: nothing counted
	accessLogs *accesslog.Writers // nil: no access logs
	admin      *adminEndpoint     // nil: no admin endpoint configured
	bgp        *announcer         // nil: no bgp block configured
	version    string

	ctl control // runtime control (control.go)

	clock lb.Clock // Options.clock; nil: the system clock
}

// service is one configured service and what runs it.
type service struct {
	cfg       *config.Service
	http      *l7.Server
	tls       []*tls.Config        // per listener; nil for plain ones
	pools     []*pool              // the pools it sends requests to; none for a respond service
	groups    []*reuseport.Group   // one per configured listener
	listeners []net.Listener       // what serves: every group's members, TLS-wrapped where configured
	serveOpts []l7.ListenerOptions // per listener: its PROXY protocol policy and connection gate
	sockets   []member             // the same, unwrapped: what an upgrade hands over
	// listenerLimits are the configured listeners' connection limits,
	// by index (climits.go).
	listenerLimits []*listenerLimit
}

// Options are a Server's optional parts.
type Options struct {
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Metrics, when not nil, counts every service's traffic, backends
	// and health checks.
	Metrics *metrics.Metrics
	// AccessLogs opens the services' access logs (config access_log);
	// nil: no service logs requests.
	AccessLogs *accesslog.Writers
	// Version names the running weir on the admin endpoint's status.
	Version string

	// clock, when not nil, is the time source of every pool's passive
	// health and slow start: tests move it by hand instead of sleeping.
	clock lb.Clock
}

// New builds every service of cfg without binding anything: a config that
// New accepts fails later only for reasons of the host (a port in use).
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	return NewWith(cfg, Options{Logger: log})
}

// NewWith is New with metrics and access logs.
func NewWith(cfg *config.Config, o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, pool: l7.NewPool(cfg.UpstreamKeepalivePoolSize), ready: make(chan struct{}),
		metrics: o.Metrics, accessLogs: o.AccessLogs, version: o.Version, clock: o.clock,
		pools: map[*config.Upstream]*pool{}}
	var errs []error
	bgpAnnouncer, err := newAnnouncer(cfg, log)
	if err != nil {
		errs = append(errs, err)
	}
	s.bgp = bgpAnnouncer
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		if sc.Kind == config.KindL4 {
			svc, err := s.buildL4(sc)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %q (%s): %w", sc.Name, sc.Pos, err))
				continue
			}
			s.l4 = append(s.l4, svc)
			continue
		}
		svc, err := s.build(sc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.services = append(s.services, svc)
	}
	if s.metrics != nil && len(s.l4) > 0 {
		s.metrics.WatchL4(s.L4Stats)
	}
	if s.metrics != nil && s.bgp != nil {
		s.metrics.WatchBGP(s.bgp.metrics)
	}
	if cfg.Admin != nil {
		a, err := s.newAdmin(cfg.Admin)
		if err != nil {
			errs = append(errs, err)
		}
		s.admin = a
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) build(sc *config.Service) (*service, error) {
	svc := &service{cfg: sc}
	where := fmt.Sprintf("service %q (%s)", sc.Name, sc.Pos)
	obs, err := s.observer(sc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	switch sc.Kind {
	case config.KindRespond:
		svc.http = s.newHTTPServer(sc, respondProxy(sc), config.Timeouts{})
	case config.KindHTTPProxy:
		if err := s.buildProxy(svc); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	default:
		return nil, fmt.Errorf("%s: unknown kind %q", where, sc.Kind)
	}
	if obs != nil {
		svc.http.Observer = obs
		if t, ok := svc.http.Proxy.(*route.Table); ok && obs.metrics != nil {
			obs.metrics.Routes(t.Names(), t.Unmatched)
		}
	}
	svc.http.RequestID = sc.RequestID
	if err := s.buildLimits(svc); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	tlsCfg, err := listenerTLS(sc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	svc.tls = tlsCfg
	return svc, nil
}

// buildProxy builds an http_proxy service's Proxy: a selection from its
// pool, or a routing table over several.
func (s *Server) buildProxy(svc *service) error {
	sc := svc.cfg
	if sc.Upstream != nil {
		proxy, pl, err := s.balancedProxy(sc)
		if err != nil {
			return err
		}
		svc.http = s.newHTTPServer(sc, proxy, sc.Upstream.Timeouts)
		svc.pools = []*pool{pl}
		return nil
	}
	table, pools, err := s.routedProxy(sc)
	if err != nil {
		return err
	}
	table.Logger = s.log.With("service", sc.Name)
	// A routed service's client-side timeouts are the defaults: its
	// routes' pools time the upstream side.
	svc.http = s.newHTTPServer(sc, table, config.Timeouts{Header: config.DefaultHeaderTimeout, Idle: config.DefaultIdleTimeout, Write: config.DefaultWriteTimeout})
	svc.pools = pools
	return nil
}

func (s *Server) newHTTPServer(sc *config.Service, p l7.Proxy, t config.Timeouts) *l7.Server {
	hs := &l7.Server{
		Name:          sc.Name,
		Proxy:         p,
		Pool:          s.pool,
		MaxRetries:    s.cfg.MaxRetries,
		HeaderTimeout: t.Header,
		IdleTimeout:   t.Idle,
		WriteTimeout:  t.Write,
		Logger:        s.log, // pkg/l7 names the service in every line
	}
	if sc.Upstream != nil {
		hs.NoForwardedHeaders = !sc.Upstream.ForwardedHeaders
	}
	return hs
}

// closeKernel releases weir's handles on the BPF data plane; the pinned
// program and maps keep forwarding.
func (s *Server) closeKernel() {
	if s.kernel != nil {
		if err := s.kernel.dp.Close(); err != nil {
			s.log.Warn("closing the BPF data plane", "err", err)
		}
	}
}

// Serve runs the services on the bound listeners until ctx is done, then
// shuts down gracefully within the configured timeout. It returns the
// first serving error, or nil after a clean shutdown.
//
// Each service starts accepting on its own, once its own load balancer
// has done its first discovery and health round (and, on the BPF data
// plane, published its table), so that its first clients meet a balancer
// that knows its backends; they queue in the listen backlog meanwhile. A
// service with static backends therefore serves at once, whatever a
// DNS-discovered one waits for; the DNS one waits at most for its
// discovery's timeout (lb.DefaultDNSTimeout) and one health round.
func (s *Server) Serve(ctx context.Context) error {
	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	for _, pl := range s.poolOrder {
		bgWG.Go(func() { pl.bal.Run(bg) })
	}
	for _, svc := range s.l4 {
		for _, run := range svc.runners() {
			bgWG.Go(func() { run(bg) })
		}
	}
	if s.kernel != nil {
		bgWG.Go(func() { s.retireStaleServices(bg) })
	}
	bgWG.Go(func() { s.sweepRateLimits(bg) })
	if s.metrics != nil {
		// The status page's request and error rates.
		bgWG.Go(func() { s.metrics.Run(bg) })
	}
	defer func() { stopBG(); bgWG.Wait() }()

	// serving ends the services that still wait for their first round
	// when Serve stops, whether ctx ended or a service failed.
	serving, stopServing := context.WithCancel(ctx)
	defer stopServing()
	errc := make(chan error, 1)
	// The admin endpoint serves at once: its status page shows the
	// services that still wait for their first round.
	s.serveAdmin(errc)
	if s.bgp != nil {
		// The sessions open now; the VIPs are announced once every
		// service serves (Ready). Resuming an upgrade's sessions, they
		// open only then (announcer.run).
		if s.bgp.resume == nil {
			if err := s.bgp.speaker.Start(ctx); err != nil {
				report(errc, err)
			}
		}
		bgWG.Go(func() { s.bgp.run(bg, s.ready) })
	}
	started := s.startedCounter(len(s.services) + len(s.l4))
	var serveWG sync.WaitGroup
	for _, svc := range s.services {
		serveWG.Go(func() { s.serveHTTP(serving, svc, started, errc) })
	}
	for _, svc := range s.l4 {
		serveWG.Go(func() { s.serveL4(serving, svc, started, errc) })
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	if s.bgp != nil {
		// Routers move the VIPs' traffic to other nodes before this
		// one stops serving: no flow is sent to a node that is leaving.
		// After ReleaseBGP it does nothing: the successor holds them.
		s.bgp.shutdown(context.Background())
	}
	stopServing()
	if s.kernel != nil {
		s.kernel.drain()
	}
	s.Shutdown(s.cfg.GracefulShutdownTimeout)
	serveWG.Wait()
	s.shutdownAdmin(adminShutdownTimeout)
	s.closeGroups() // with the sockets of services that never served
	for _, svc := range s.l4 {
		svc.closeSockets()
	}
	return err
}

// startedCounter returns the function each service calls once it serves;
// the last call logs that weir serves and closes Ready.
func (s *Server) startedCounter(n int) func() {
	var mu sync.Mutex
	done := func() {
		s.markStarted(time.Now())
		s.log.Info("weir is serving", "services", len(s.services)+len(s.l4))
		close(s.ready)
	}
	if n == 0 {
		done()
	}
	return func() {
		mu.Lock()
		n--
		last := n == 0
		mu.Unlock()
		if last {
			done()
		}
	}
}

// serveHTTP waits for svc's first round, then steers new connections to
// its sockets and accepts on them until the service is shut down.
func (s *Server) serveHTTP(ctx context.Context, svc *service, started func(), errc chan<- error) {
	var ready []<-chan struct{}
	for _, pl := range svc.pools {
		ready = append(ready, pl.bal.Ready())
	}
	if !waitAll(ctx, ready) {
		return
	}
	for _, g := range svc.groups {
		if err := g.Activate(); err != nil {
			report(errc, fmt.Errorf("service %q: %w", svc.cfg.Name, err))
			return
		}
	}
	var wg sync.WaitGroup
	for i, ln := range svc.listeners {
		wg.Go(func() {
			if err := svc.http.ServeWith(ln, svc.serveOpts[i]); err != nil && !errors.Is(err, l7.ErrServerClosed) {
				report(errc, fmt.Errorf("service %q: %w", svc.cfg.Name, err))
			}
		})
	}
	started()
	wg.Wait()
}

// serveL4 waits for svc's first round and, on the BPF data plane, its
// first published table, then runs its userspace proxy if it has one.
func (s *Server) serveL4(ctx context.Context, svc *l4Service, started func(), errc chan<- error) {
	ready := []<-chan struct{}{svc.lb.Ready()}
	if svc.bpf != nil {
		ready = append(ready, svc.mirror.Published())
	}
	if !waitAll(ctx, ready) {
		return
	}
	started()
	if err := svc.serve(); err != nil {
		report(errc, fmt.Errorf("service %q: %w", svc.cfg.Name, err))
	}
}

// ResumeBGP makes this server, the new process of an upgrade, take over
// the BGP sessions its predecessor hands over with ReleaseBGP; call it
// before Serve. With graceful restart configured, the speaker does not
// open its sessions when Serve starts but once the server is ready (every
// service has done its first health round, from the inherited health
// verdicts) and handedOver is closed (the predecessor has confirmed the
// hand-over, and lets go of the sessions right then), as a restarting
// speaker (RFC 4724): the routers keep the predecessor's
// routes until this process's End-of-RIB, which follows the VIPs this
// process decided to announce, so a VIP that stays announced is never
// withdrawn and one whose backends are gone is. Without a bgp block or
// without graceful restart it does nothing: the sessions open with Serve.
func (s *Server) ResumeBGP(handedOver <-chan struct{}) {
	if s.bgp != nil && s.bgp.restart > 0 {
		s.bgp.resume = handedOver
	}
}

// ReleaseBGP hands the BGP sessions over to the successor of an upgrade,
// which has reported ready: with graceful restart configured, it closes
// them at once without withdrawing and without a NOTIFICATION, so the
// routers keep the VIPs, marked stale, for the restart time while the
// successor (ResumeBGP) re-opens them; Serve's graceful stop then
// withdraws nothing. It reports false, changing nothing, without a bgp
// block or without graceful restart: Serve's graceful stop then
// withdraws the VIPs, waits converge and closes, as on any stop.
func (s *Server) ReleaseBGP() bool {
	return s.bgp != nil && s.bgp.release()
}

// Ready is closed once Serve accepts on every listener: every service's
// load balancer has done its first discovery and health round, and every
// l4 service on the BPF data plane has published its table. Each of these
// waits is bounded (a DNS discovery by its timeout, a health round by its
// checks' timeout), so Ready closes even when a resolver never answers;
// services that are ready serve before it does. A new process of an
// upgrade reports ready to the old one then.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// waitAll waits until every channel of ready is closed (true), or ctx is
// done (false).
func waitAll(ctx context.Context, ready []<-chan struct{}) bool {
	for _, r := range ready {
		select {
		case <-ctx.Done():
			return false
		case <-r:
		}
	}
	return ctx.Err() == nil
}

// report passes err on unless an earlier error already was.
func report(errc chan<- error, err error) {
	select {
	case errc <- err:
	default:
	}
}

// retireStaleServices removes the services a previous weir pinned that
// this configuration no longer has, once every l4 service of this one has
// published its own table.
func (s *Server) retireStaleServices(ctx context.Context) {
	for _, svc := range s.l4 {
		if svc.bpf == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-svc.mirror.Published():
		}
	}
	if err := s.kernel.retireStale(); err != nil {
		s.log.Error("removing services no longer configured from the BPF data plane", "err", err)
	}
}

// DetachUnused unhooks the BPF data plane from the interfaces that a
// previous weir (or this configuration before a reload) attached it to
// and this configuration no longer uses, tc and XDP alike, and logs each.
// An interface is in use when a service names it, or when the route to a
// backend of a service on the BPF data plane, up or down, leaves through
// it. Hooks that are not weir's are never touched.
//
// Call it once the start has settled: Ready, and in an upgrade (or a
// reload) only once the previous weir has handed over, since until then
// it may yet serve on with its own configuration. The previous weir never
// detaches: it shares the pins with this one, which decides alone. With
// no service on the BPF data plane it does nothing.
func (s *Server) DetachUnused() error {
	if s.kernel == nil {
		return nil
	}
	var backends []netip.Addr
	for _, svc := range s.l4 {
		if svc.bpf == nil {
			continue
		}
		for _, b := range svc.lb.Status() {
			if ap, err := netip.ParseAddrPort(b.Backend.Addr); err == nil {
				backends = append(backends, ap.Addr())
			}
		}
	}
	return s.kernel.detachUnused(backends)
}

// Shutdown stops every service gracefully, waiting at most timeout for
// requests in flight.
func (s *Server) Shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, svc := range s.services {
		wg.Go(func() {
			if err := svc.http.Shutdown(ctx); err != nil {
				s.log.Warn("graceful shutdown cut requests short", "service", svc.cfg.Name, "err", err)
			}
		})
	}
	for _, svc := range s.l4 {
		wg.Go(func() { svc.shutdown(ctx) })
	}
	wg.Wait()
	s.pool.Close()
	s.closeKernel()
}

// Close stops every service at once.
func (s *Server) Close() {
	if s.admin != nil {
		s.admin.handler.Close()
	}
	for _, svc := range s.services {
		svc.http.Close()
	}
	if s.bgp != nil {
		// Closing the sessions makes the routers drop the VIPs at once.
		s.bgp.speaker.Stop()
	}
	for _, svc := range s.l4 {
		svc.close()
	}
	s.pool.Close()
	s.closeKernel()
}

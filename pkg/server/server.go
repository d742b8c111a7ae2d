// Package server runs weir's services from a configuration: it binds the
// listeners, runs each service's load balancer (discovery and health
// checks) in the background, and stops gracefully on SIGTERM or at once
// on SIGINT.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
)

// Server hosts the services of one configuration.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	pool     *l7.Pool
	services []*service
}

// service is one configured service and what runs it.
type service struct {
	cfg       *config.Service
	http      *l7.Server
	tls       []*tls.Config // per listener; nil for plain ones
	runners   []func(context.Context)
	listeners []net.Listener
}

// New builds every service of cfg without binding anything: a config that
// New accepts fails later only for reasons of the host (a port in use).
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, pool: l7.NewPool(cfg.UpstreamKeepalivePoolSize)}
	errs := unsupported(cfg)
	for i := range cfg.Services {
		svc, err := s.build(&cfg.Services[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.services = append(s.services, svc)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// unsupported reports settings this build parses but cannot honour yet;
// ignoring them would surprise the operator (a "daemon" that stays in the
// foreground, a server that keeps root).
func unsupported(cfg *config.Config) []error {
	var errs []error
	if cfg.Daemon {
		errs = append(errs, errors.New("daemon: true is not supported by this build of weir; run it in the foreground under a supervisor such as systemd"))
	}
	if cfg.User != "" || cfg.Group != "" {
		errs = append(errs, errors.New("user and group are not supported by this build of weir; start it as the user it should run as"))
	}
	return errs
}

func (s *Server) build(sc *config.Service) (*service, error) {
	svc := &service{cfg: sc}
	where := fmt.Sprintf("service %q (%s)", sc.Name, sc.Pos)
	switch sc.Kind {
	case config.KindRespond:
		svc.http = s.newHTTPServer(sc, respondProxy(sc), config.Timeouts{})
	case config.KindHTTPProxy:
		proxy, runner, err := s.balancedProxy(sc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		svc.http = s.newHTTPServer(sc, proxy, sc.Upstream.Timeouts)
		svc.runners = append(svc.runners, runner)
	case config.KindL4:
		return nil, fmt.Errorf("%s: kind l4 needs the L4 data plane, which this build of weir does not include", where)
	default:
		return nil, fmt.Errorf("%s: unknown kind %q", where, sc.Kind)
	}
	tlsCfg, err := listenerTLS(sc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	svc.tls = tlsCfg
	return svc, nil
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
		Logger:        s.log.With("service", sc.Name),
	}
	if sc.Upstream != nil {
		hs.NoForwardedHeaders = !sc.Upstream.ForwardedHeaders
	}
	return hs
}

// ListenerSpec names one listener of the configuration: the service, its
// address, and the listener's index within the service.
type ListenerSpec struct {
	Service string
	Addr    string
	Index   int
}

// OpenFunc returns the listening socket for a listener: a new one, or one
// inherited from a previous process during a graceful upgrade.
type OpenFunc func(ListenerSpec) (net.Listener, error)

// Listen binds every listener with a new socket.
func (s *Server) Listen() error {
	var lc net.ListenConfig
	return s.ListenWith(func(l ListenerSpec) (net.Listener, error) {
		return lc.Listen(context.Background(), "tcp", l.Addr)
	})
}

// ListenWith takes every listener from open, which may hand over sockets
// inherited from another process. TLS is layered on here, so open deals in
// plain TCP listeners only. On error, the listeners already opened are
// closed again.
func (s *Server) ListenWith(open OpenFunc) error {
	for _, svc := range s.services {
		for i, l := range svc.cfg.Listeners {
			ln, err := open(ListenerSpec{Service: svc.cfg.Name, Addr: l.Addr, Index: i})
			if err != nil {
				s.closeListeners()
				return fmt.Errorf("service %q: listen on %s (%s): %w", svc.cfg.Name, l.Addr, l.Pos, err)
			}
			if l.TLS != nil {
				ln = tls.NewListener(ln, svc.tls[i])
			}
			svc.listeners = append(svc.listeners, ln)
		}
	}
	return nil
}

func (s *Server) closeListeners() {
	for _, svc := range s.services {
		for _, ln := range svc.listeners {
			ln.Close()
		}
		svc.listeners = nil
	}
}

// Addrs returns the bound address of every listener, by service name, in
// configuration order; useful when a config asks for port 0.
func (s *Server) Addrs() map[string][]net.Addr {
	out := map[string][]net.Addr{}
	for _, svc := range s.services {
		for _, ln := range svc.listeners {
			out[svc.cfg.Name] = append(out[svc.cfg.Name], ln.Addr())
		}
	}
	return out
}

// Serve runs the services on the bound listeners until ctx is done, then
// shuts down gracefully within the configured timeout. It returns the
// first serving error, or nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	for _, svc := range s.services {
		for _, run := range svc.runners {
			bgWG.Go(func() { run(bg) })
		}
	}
	defer func() { stopBG(); bgWG.Wait() }()

	errc := make(chan error, 1)
	var serveWG sync.WaitGroup
	for _, svc := range s.services {
		for _, ln := range svc.listeners {
			serveWG.Go(func() {
				if err := svc.http.Serve(ln); err != nil && !errors.Is(err, l7.ErrServerClosed) {
					select {
					case errc <- fmt.Errorf("service %q: %w", svc.cfg.Name, err):
					default:
					}
				}
			})
		}
	}
	s.log.Info("weir is serving", "services", len(s.services))

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.Shutdown(s.cfg.GracefulShutdownTimeout)
	serveWG.Wait()
	return err
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
	wg.Wait()
	s.pool.Close()
}

// Close stops every service at once.
func (s *Server) Close() {
	for _, svc := range s.services {
		svc.http.Close()
	}
	s.pool.Close()
}

// RunUntilSignal binds, serves, and stops on a signal: SIGTERM shuts down
// gracefully (in-flight requests finish), SIGINT stops at once.
func (s *Server) RunUntilSignal() error {
	if err := s.Listen(); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		sig := <-sigs
		if sig == syscall.SIGINT {
			s.log.Info("SIGINT: stopping now")
			s.Close()
		} else {
			s.log.Info("SIGTERM: stopping gracefully", "timeout", s.cfg.GracefulShutdownTimeout)
		}
		cancel()
	}()
	return s.Serve(ctx)
}

package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"

	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// respondProxy builds the fixed-response origin of a respond service.
func respondProxy(sc *config.Service) *l7.Respond {
	r := &l7.Respond{Status: sc.Respond.Status, Body: []byte(sc.Respond.Body)}
	for _, name := range sortedKeys(sc.Respond.Headers) {
		r.Header.Add(name, sc.Respond.Headers[name])
	}
	if !r.Header.Has("Content-Type") {
		r.Header.Add("Content-Type", "text/plain; charset=utf-8")
	}
	return r
}

// balancedProxy builds the Proxy of an http_proxy service without
// routes: a selection from its pool, the service's inline upstream or the
// named pool it refers to.
func (s *Server) balancedProxy(sc *config.Service) (*l7.Balanced, *pool, error) {
	pl, err := s.poolFor(sc.Upstream, sc.Name)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.balancedFrom(pl, config.RouteTimeouts{})
	return p, pl, err
}

// balancer is what the server needs of any *lb.LoadBalancer[A].
type balancer interface {
	l7.Selector
	Run(context.Context)
	Ready() <-chan struct{}
	Status() []lb.Status
}

func newLoadBalancer(up *config.Upstream, opts lb.Options) (balancer, error) {
	var (
		b   balancer
		err error
	)
	switch up.Selection {
	case config.SelectRoundRobin:
		b, err = lb.New(&lb.RoundRobin{}, opts)
	case config.SelectRandom:
		b, err = lb.New(lb.Random{}, opts)
	case config.SelectLeastLoaded:
		b, err = lb.New(lb.LeastLoaded{}, opts)
	case config.SelectFNV:
		b, err = lb.New(lb.FNV{}, opts)
	case config.SelectConsistent:
		b, err = lb.New(lb.Ketama{}, opts)
	case config.SelectMaglev:
		b, err = lb.New(lb.Maglev{}, opts)
	default:
		return nil, fmt.Errorf("unknown selection %q", up.Selection)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// lbOptions are the load balancer options of the pool named name (a
// service's name for its inline upstream). HTTP requests are counted
// against its backends in hs, when not nil.
func (s *Server) lbOptions(name string, up *config.Upstream, hs *metrics.HTTPService) (lb.Options, error) {
	opts := lb.Options{Logger: s.log.With("service", name)}
	switch up.Discovery.Type {
	case config.DiscoveryDNS:
		names := make([]lb.DNSName, len(up.Discovery.Names))
		for i, n := range up.Discovery.Names {
			names[i] = lb.DNSName{Name: n}
		}
		d, err := lb.NewDNS(lb.DNSConfig{Names: names, Server: up.Discovery.Server, Network: up.Discovery.Network})
		if err != nil {
			return opts, err
		}
		opts.Discovery, opts.UpdateInterval = d, up.Discovery.Refresh
	default:
		backends := make([]lb.Backend, len(up.Backends))
		for i, bs := range up.Backends {
			b, err := lb.NewBackend(bs.Addr, bs.Weight)
			if err != nil {
				return opts, fmt.Errorf("backend at %s: %w", bs.Pos, err)
			}
			b.Metadata, b.Backup = bs.Metadata, bs.Backup
			b.MaxConnections = bs.MaxConnections
			backends[i] = b
		}
		d, err := lb.NewStatic(backends...)
		if err != nil {
			return opts, err
		}
		opts.Discovery = d
	}
	if hc := up.HealthCheck; hc != nil {
		check, err := s.healthCheck(hc, up)
		if err != nil {
			return opts, fmt.Errorf("health_check at %s: %w", hc.Pos, err)
		}
		opts.HealthCheck = check
		opts.CheckInterval = hc.Interval
		opts.CheckTimeout = hc.Timeout
		opts.ParallelChecks = hc.Parallel
		opts.ConsecutiveSuccess = hc.ConsecutiveSuccess
		opts.ConsecutiveFailure = hc.ConsecutiveFailure
		if hc.Initially == config.InitiallyUnhealthy {
			opts.Initially = lb.InitiallyUnhealthy
		}
		opts.Observers = append(opts.Observers, healthLogger(s.log.With("service", name)))
	}
	// The config filled in every default; lb gets its own copy.
	if up.Outlier != nil {
		o := *up.Outlier
		opts.Outlier = &o
	}
	opts.SlowStart = up.SlowStart
	opts.Clock = s.clock
	s.connLimits(name, up, &opts)
	if s.metrics != nil {
		s.metrics.Balancer(name, &opts, hs)
	}
	return opts, nil
}

// healthLogger logs every backend whose health or enablement changes.
func healthLogger(log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) lb.Observer {
	return lb.ObserverFunc(func(e lb.Event) {
		switch {
		case e.Kind == lb.HealthChanged && !e.Healthy:
			log.Warn("backend is down", "backend", e.Backend.Addr, "reason", e.Reason)
		case e.Kind == lb.HealthChanged:
			log.Info("backend is up", "backend", e.Backend.Addr)
		case e.Kind == lb.EnabledChanged:
			log.Info("backend enablement changed", "backend", e.Backend.Addr, "enabled", e.Enabled)
		}
	})
}

func (s *Server) healthCheck(hc *config.HealthCheck, up *config.Upstream) (lb.HealthCheck, error) {
	switch hc.Type {
	case config.CheckTCP:
		c := &lb.TCPCheck{Timeout: hc.Timeout, ProxyProtocol: checkProxy(up, 0)}
		return c, c.Validate()
	case config.CheckGRPC:
		return s.grpcCheck(hc, up)
	}
	h := hc.HTTP
	c := &lb.HTTPCheck{
		Method: h.Method, Path: h.Path, Host: h.Host, BodyContains: h.BodyContains,
		Port: h.Port, SNI: h.SNI, Timeout: hc.Timeout, Expect: h.Expect,
		ProxyProtocol: checkProxy(up, h.Port),
	}
	if len(h.Headers) > 0 {
		c.Header = http.Header{}
		for k, v := range h.Headers {
			c.Header.Set(k, v)
		}
	}
	if h.TLS {
		roots, err := s.roots(up.TLS)
		if err != nil {
			return nil, err
		}
		c.TLS = &tls.Config{RootCAs: roots, InsecureSkipVerify: up.TLS != nil && !up.TLS.Verify}
	}
	return c, c.Validate()
}

// checkProxy is the PROXY protocol version a health check speaks: the
// pool's, when the check goes to the port the pool's connections go to
// (a backend that requires the header there drops a check without one);
// none on a check port of its own.
func checkProxy(up *config.Upstream, port int) proxyproto.Version {
	if port != 0 {
		return 0
	}
	return proxyVersion(up.ProxyProtocol)
}

// grpcCheck builds a grpc.health.v1 check.
func (s *Server) grpcCheck(hc *config.HealthCheck, up *config.Upstream) (lb.HealthCheck, error) {
	g := hc.GRPC
	c := &lb.GRPCCheck{Service: g.Service, Port: g.Port, SNI: g.SNI, Timeout: hc.Timeout, ProxyProtocol: checkProxy(up, g.Port)}
	if g.TLS {
		roots, err := s.roots(up.TLS)
		if err != nil {
			return nil, err
		}
		c.TLS = &tls.Config{RootCAs: roots, InsecureSkipVerify: up.TLS != nil && !up.TLS.Verify}
	}
	return c, c.Validate()
}

// peerTemplate holds the connection settings every backend shares.
func (s *Server) peerTemplate(up *config.Upstream) (l7.Peer, error) {
	t := up.Timeouts
	p := l7.Peer{Timeouts: l7.Timeouts{Connect: t.Connect, Read: t.Read, Write: t.Write, Idle: t.Idle},
		ProxyProtocol: proxyVersion(up.ProxyProtocol)}
	if up.TLS == nil {
		if up.ALPN == config.ALPNH2C {
			p.ALPN = l7.ALPNH2C
		}
		return p, nil
	}
	roots, err := s.roots(up.TLS)
	if err != nil {
		return p, err
	}
	p.TLS, p.SNI, p.InsecureSkipVerify, p.RootCAs = true, up.TLS.SNI, !up.TLS.Verify, roots
	switch up.TLS.ALPN {
	case config.ALPNH2:
		p.ALPN = l7.ALPNH2
	case config.ALPNH2H1:
		p.ALPN = l7.ALPNH2H1
	}
	return p, nil
}

// roots returns the CA pool for upstream TLS: the system roots plus the
// server's ca_file and the upstream's own ca_file; nil (system roots)
// when neither is set.
func (s *Server) roots(t *config.TLSClient) (*x509.CertPool, error) {
	files := []string{}
	if s.cfg.CAFile != "" {
		files = append(files, s.cfg.CAFile)
	}
	if t != nil && t.CAFile != "" {
		files = append(files, t.CAFile)
	}
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		pem, err := config.ReadFile(f, "CA certificate")
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", f)
		}
	}
	return pool, nil
}

// listenerTLS builds the TLS config of each of a service's listeners,
// aligned with sc.Listeners (nil for plain ones). A listener's several
// certificates are chosen by the client's SNI; the first serves clients
// that send none.
func listenerTLS(sc *config.Service) ([]*tls.Config, error) {
	out := make([]*tls.Config, len(sc.Listeners))
	for i, l := range sc.Listeners {
		if l.TLS == nil {
			continue
		}
		cfg := &tls.Config{MinVersion: l.TLS.MinVersion, NextProtos: []string{"h2", "http/1.1"}}
		for _, c := range l.TLS.Certs {
			pair, err := loadKeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("certificate at %s: %w", c.Pos, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
		out[i] = cfg
	}
	return out, nil
}

// loadKeyPair reads a certificate and its key the way the configuration
// check did (config.ReadFile: regular files only, bounded, never
// blocking), since either may have changed since.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := config.ReadFile(certFile, "certificate")
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := config.ReadFile(keyFile, "private key")
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(cert, key)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

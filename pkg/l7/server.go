package l7

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/limit"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("l7: server closed")

// Server serves a Proxy on listeners. Configure it before the first Serve
// and do not change it afterwards.
type Server struct {
	// Name names the service in logs.
	Name string
	// Proxy handles every request. Required.
	Proxy Proxy
	// Pool holds upstream connections; nil gives the server its own,
	// keeping up to 128 idle connections per peer.
	Pool *Pool
	// MaxRetries is how many more peers a request may try after a
	// connection attempt fails; a RequestFilter may change it for one
	// request (Session.MaxRetries).
	MaxRetries int
	// Limits bound request heads.
	Limits h1.Limits
	// HeaderTimeout bounds reading a request head once its first byte
	// arrived (slowloris protection); default 10s.
	HeaderTimeout time.Duration
	// IdleTimeout bounds waiting for the next request on a keep-alive
	// connection, and each read of a request body; default 60s.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client; default 60s.
	WriteTimeout time.Duration
	// NoForwardedHeaders stops the server from setting X-Forwarded-For,
	// X-Forwarded-Proto and X-Forwarded-Host.
	NoForwardedHeaders bool
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Observer, when not nil, is told of every connection and request:
	// the hook for metrics and access logs.
	Observer Observer
	// ProxyProtocol, when not nil, makes every connection from a
	// balancer it trusts begin with a PROXY protocol header (v1 or v2),
	// read before any TLS within its Timeout; a connection without one is
	// closed. The client address the header carries is the connection's
	// from then on: Session.Client, X-Forwarded-For, logs. Connections
	// from elsewhere are served as without it: a header they send is
	// refused as a malformed request.
	ProxyProtocol *proxyproto.Policy
	// RequestID gives every request an id (Session.RequestID): the
	// client's X-Request-Id when valid, else a new one. It is sent
	// upstream, in the response, and in every log line of the request.
	RequestID bool
	// ClientLimits, when not nil, bound each client's request rate,
	// connections and request bodies, and count what every limit
	// refused (431 heads included).
	ClientLimits *ClientLimits

	once sync.Once
	mu   sync.Mutex
	// conns maps every open connection to whether it is idle.
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	closing   atomic.Bool
	accepting sync.WaitGroup // Serve's accept loops
	// drainUntil (Unix nanoseconds) ends the grace Shutdown gives idle
	// connections; it is set before closing, so whoever sees closing
	// sees it too. Zero: no grace (Close).
	drainUntil atomic.Int64
	wg         sync.WaitGroup
	// quiet holds the keep-alive connections waiting, quiet, for their
	// next request.
	quiet quietSet

	// h2conns are the HTTP/2 connections, for Shutdown's GOAWAY.
	h2conns map[*h2Conn]struct{}
	workers workers
	// stopped is done once Shutdown or Close begins: it wakes accept
	// loops waiting for a connection slot.
	stopped context.Context
	stop    context.CancelFunc
	// closed is done once the server cuts its connections (Close, or a
	// Shutdown out of time): it ends requests waiting in a backend
	// queue (slots.go).
	closed      context.Context
	closeQueued context.CancelCauseFunc
}

// ListenerOptions say how Server.ServeWith serves one listener.
type ListenerOptions struct {
	// ProxyProtocol is the PROXY protocol policy of this listener (nil:
	// none); it overrides Server.ProxyProtocol.
	ProxyProtocol *proxyproto.Policy
	// Gate, when not nil, bounds the listener's open connections
	// (max_connections): each connection holds a slot until it closes,
	// and at the limit the accept loop stops accepting (after at most one
	// connection, which waits unread for a slot), so new connections wait
	// in the kernel's listen queue rather than being accepted and
	// dropped. Several listeners (the SO_REUSEPORT sockets of one
	// configured listener) may share one Gate for one limit.
	Gate *limit.Gate
	// Limited, when not nil, counts the times the accept loop found the
	// listener at its Gate's limit and stopped accepting (connections
	// then wait in the kernel's queue).
	Limited *atomic.Uint64
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Pool == nil {
			s.Pool = NewPool(128)
		}
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		s.HeaderTimeout = orDefault(s.HeaderTimeout, 10*time.Second)
		s.IdleTimeout = orDefault(s.IdleTimeout, 60*time.Second)
		s.WriteTimeout = orDefault(s.WriteTimeout, 60*time.Second)
		s.conns = map[*conn]struct{}{}
		s.h2conns = map[*h2Conn]struct{}{}
		s.listeners = map[net.Listener]struct{}{}
		s.stopped, s.stop = context.WithCancel(context.Background())
		s.closed, s.closeQueued = context.WithCancelCause(context.Background())
	})
}

// Serve accepts connections on l until Shutdown or Close, and returns
// ErrServerClosed then. A TLS listener (tls.NewListener) is served over
// TLS; the handshake runs on the goroutine serving the connection. Serve
// closes l when it returns, as net/http's does. Connections read PROXY
// protocol headers as Server.ProxyProtocol says.
func (s *Server) Serve(l net.Listener) error {
	return s.ServeProxied(l, s.ProxyProtocol)
}

// ServeProxied is Serve with the PROXY protocol policy of this listener
// (nil: none), for a server whose listeners trust different balancers.
func (s *Server) ServeProxied(l net.Listener, pp *proxyproto.Policy) error {
	return s.ServeWith(l, ListenerOptions{ProxyProtocol: pp})
}

// ServeWith is Serve with options for this listener: its PROXY protocol
// policy and its connection limit.
func (s *Server) ServeWith(l net.Listener, opts ListenerOptions) error {
	s.init()
	defer l.Close() // already closed by Shutdown or Close, unless it came first
	if s.Proxy == nil {
		return errors.New("l7: server has no Proxy")
	}
	s.mu.Lock()
	if s.closing.Load() {
		// Shutdown began before this Serve: its listener must stop
		// taking connections all the same (with SO_REUSEPORT the kernel
		// would go on queueing a share of new ones on it).
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.accepting.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		s.accepting.Done()
	}()

	gate := opts.Gate
	var backoff time.Duration
	for {
		if gate != nil && !s.awaitSlot(gate, opts.Limited) {
			return ErrServerClosed
		}
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors or a transient error: wait, don't spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.Logger.Warn("accept failed; retrying", "service", s.Name, "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		backoff = 0
		if gate != nil && gate.Acquire(s.stopped) != nil {
			nc.Close()
			return ErrServerClosed
		}
		c := s.newConn(nc, gate)
		if c == nil {
			continue
		}
		c.pp = opts.ProxyProtocol
		s.workers.run(job{c: c})
	}
}

// awaitSlot waits until gate has a free slot, without taking it, and
// reports false if the server stopped first. The slot is taken only once
// a connection is accepted: a loop holding one while it waits in Accept
// would starve the other loops sharing the gate (the SO_REUSEPORT sockets
// of one listener, each with its own queue) down to a deadlock. So at the
// limit a loop has accepted at most one connection, which waits unread
// for a slot; the rest wait in the kernel's listen queue.
func (s *Server) awaitSlot(gate *limit.Gate, limited *atomic.Uint64) bool {
	if gate.TryAcquire() {
		gate.Release()
		return true
	}
	if limited != nil {
		limited.Add(1)
	}
	if gate.Acquire(s.stopped) != nil {
		return false
	}
	gate.Release()
	return true
}

// newConn registers nc, holding a slot of gate (nil: none) that forget
// gives back, or closes it and gives the slot back when the server is
// closed. A connection accepted as a graceful Shutdown began is served:
// its client has a request on the way, and closing would reset it.
func (s *Server) newConn(nc net.Conn, gate *limit.Gate) *conn {
	c := &conn{srv: s, c: nc, remote: remoteAddrPort(nc), gate: gate}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() && s.drainUntil.Load() == 0 {
		nc.Close()
		if gate != nil {
			gate.Release()
		}
		return nil
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	if s.Observer != nil {
		s.Observer.ConnOpened()
	}
	return c
}

// remoteAddrPort returns the client's address, IPv4-mapped addresses
// unmapped. A TCP peer's comes without formatting and parsing it (which
// would allocate for every connection).
func remoteAddrPort(nc net.Conn) netip.AddrPort {
	var ap netip.AddrPort
	switch a := nc.RemoteAddr().(type) {
	case nil:
		return netip.AddrPort{}
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.AddrPort{}
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if c.gate != nil {
		c.gate.Release()
	}
	if s.Observer != nil {
		s.Observer.ConnClosed()
	}
	s.wg.Done()
}

// Shutdown stops the server gracefully: it closes the listeners, lets
// every request in flight finish (its response says Connection: close),
// gives idle keep-alive connections a short grace to send one more
// request (answered with Connection: close) before closing them without a
// reset, and returns when all connections are gone or ctx is done, in
// which case the remaining ones are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	idleUntil := time.Now().Add(shutdownIdleGrace)
	s.drainUntil.Store(idleUntil.UnixNano())
	s.stopAccepting()
	done := make(chan struct{})
	go func() {
		// Connections accepted until the accept loops stop are served;
		// only then can the count of connections be waited on.
		s.accepting.Wait()
		s.wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.expireIdle(idleUntil)
		select {
		case <-done:
			s.quiet.stop()
			s.workers.stop()
			s.Pool.Close()
			return nil
		case <-ctx.Done():
			s.closeAll()
			<-done
			s.workers.stop()
			s.Pool.Close()
			return ctx.Err()
		case <-tick.C:
			// A connection that was mid-request when Shutdown began
			// turns idle when its response is done: expire it then.
		}
	}
}

// shutdownIdleGrace is how long a connection idle when Shutdown begins
// may still send a request. Closing an idle keep-alive connection races
// with the client's next request, which the client then has to retry; a
// busy client sends within the grace and is answered with
// Connection: close instead, so under load a graceful shutdown or an
// upgrade makes no client retry at all.
const shutdownIdleGrace = 250 * time.Millisecond

// Close stops the server at once, cutting every connection.
func (s *Server) Close() error {
	s.init()
	s.drainUntil.Store(0) // no grace, even if a Shutdown gave one
	s.stopAccepting()
	s.accepting.Wait()
	s.closeAll()
	s.wg.Wait()
	s.workers.stop()
	s.Pool.Close()
	return nil
}

func (s *Server) stopAccepting() {
	s.mu.Lock()
	s.closing.Store(true)
	s.stop() // wakes accept loops waiting for a connection slot
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
}

// idleDeadline is when a connection turning idle at now stops waiting for
// its next request: after IdleTimeout normally; at the end of the grace
// during Shutdown, so that a connection accepted or done with a request
// just as Shutdown began is still served once more (a new connection's
// client has its request on the way).
func (s *Server) idleDeadline(now time.Time) time.Time {
	if s.closing.Load() {
		return time.Unix(0, s.drainUntil.Load())
	}
	return now.Add(s.IdleTimeout)
}

// expireIdle makes idle connections stop waiting for a request at the
// latest at t. It is called again on every Shutdown tick because a
// connection turning idle sets its own idle deadline, which may land just
// after this one.
func (s *Server) expireIdle(t time.Time) {
	s.mu.Lock()
	for c := range s.conns {
		if c.idle.Load() {
			c.c.SetReadDeadline(t)
		}
	}
	s.quiet.expireBy(t)
	h2 := make([]*h2Conn, 0, len(s.h2conns))
	for hc := range s.h2conns {
		h2 = append(h2, hc)
	}
	s.mu.Unlock()
	// Outside s.mu: sending the GOAWAY may wait for the socket.
	for _, hc := range h2 {
		hc.shutdown()
	}
}

// trackH2 adds the HTTP/2 connection hc to those Shutdown sends GOAWAY
// to, or removes it.
func (s *Server) trackH2(hc *h2Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.h2conns[hc] = struct{}{}
	} else {
		delete(s.h2conns, hc)
	}
}

// closeAll closes every connection; the quiet ones end at once, the
// others when their goroutine notices.
func (s *Server) closeAll() {
	s.init()
	s.closeQueued(errServerClosed)
	s.mu.Lock()
	for c := range s.conns {
		c.c.Close()
	}
	s.mu.Unlock()
	s.quiet.stop()
}

package l4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// Defaults for the TCPProxy fields left at zero.
const (
	// DefaultConnectTimeout bounds one connection attempt to a backend,
	// as for weir's other upstreams.
	DefaultConnectTimeout = 2 * time.Second
	// DefaultTCPIdleTimeout closes a TCP connection on which no byte moved
	// either way for this long (nginx's proxy_timeout default).
	DefaultTCPIdleTimeout = 10 * time.Minute
)

// maxAcceptBackoff caps the wait between failed accepts.
const maxAcceptBackoff = time.Second

// TCPProxy forwards TCP connections to backends chosen by LB.
//
// For each accepted connection it selects a backend with the client's
// address and port as key, connects to it (trying other backends, never
// one twice, when a connection attempt fails), then copies bytes both ways
// until both sides have finished. Between two TCP sockets Linux copies
// with splice(2) through a pipe: the bytes never enter the process. A side that finishes sending (FIN) is half-closed towards the
// other, so protocols that half-close work. The backend is Acquired for
// the connection's life, so LeastLoaded and the status report see it.
//
// Set the fields before the first Serve and do not change them after.
// The methods are safe for concurrent use.
type TCPProxy struct {
	// LB chooses the backends. Required.
	LB Selector
	// ConnectTimeout bounds one connection attempt; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection on which no byte has moved either
	// way for this long; 0 means DefaultTCPIdleTimeout, a negative value
	// no limit. With no limit, both sockets send TCP keep-alive probes
	// (Go's default timing) to find a vanished peer; with one, neither
	// does, and the listener should not either (KeepAlive -1).
	IdleTimeout time.Duration
	// MaxRetries is how many other backends a connection may try after
	// its first connection attempt failed; 0 tries one only.
	MaxRetries int
	// ProxyProtocol, when not 0, is the PROXY protocol version (1 or 2)
	// of a header written first on each backend connection, announcing
	// the client's address and the one it connected to. Writing it is
	// part of the connection attempt: a backend that cannot take it is
	// failed over like one that refused the connection.
	ProxyProtocol proxyproto.Version
	// Logger receives accept failures (Warn), connections that could not
	// be served (Warn) and the end of each connection (Debug); nil
	// discards.
	Logger *slog.Logger

	once      sync.Once
	ctx       context.Context // cancelled by Close and an expired Shutdown
	cancel    context.CancelFunc
	bufs      *bufferPool
	pipes     *pipePool // splice pipes between transfers
	workers   *workers  // run each connection's two directions
	stats     counters
	closing   atomic.Bool
	mu        sync.Mutex // guards listeners and conns
	listeners map[net.Listener]struct{}
	conns     map[*tcpConn]struct{}
	wg        sync.WaitGroup // one per connection
	// stopAccept is closed when the proxy starts closing.
	stopAccept chan struct{}
	// loops are the event loops serving TCP listeners on Linux, started
	// by the first such Serve; guarded by mu.
	loops *loopSet
	// portable serves every listener with a goroutine per connection,
	// as on other systems: for tests of that path.
	portable bool
}

func (p *TCPProxy) init() {
	p.once.Do(func() {
		if p.Logger == nil {
			p.Logger = slog.New(slog.DiscardHandler)
		}
		p.ctx, p.cancel = context.WithCancel(context.Background())
		p.bufs = newBufferPool(copyBufferSize)
		p.pipes = new(pipePool)
		p.workers = newWorkers(p.ctx.Done())
		p.listeners = map[net.Listener]struct{}{}
		p.conns = map[*tcpConn]struct{}{}
		p.stopAccept = make(chan struct{})
	})
}

func (p *TCPProxy) connectTimeout() time.Duration {
	if p.ConnectTimeout > 0 {
		return p.ConnectTimeout
	}
	return DefaultConnectTimeout
}

func (p *TCPProxy) idleTimeout() time.Duration {
	switch {
	case p.IdleTimeout == 0:
		return DefaultTCPIdleTimeout
	case p.IdleTimeout < 0:
		return 0
	}
	return p.IdleTimeout
}

// Serve accepts connections on l and proxies each on its own goroutine,
// until Shutdown or Close, when it returns ErrProxyClosed. Running out of
// file descriptors does not stop it: it waits (5 ms, doubling up to 1 s)
// and accepts again. Any other accept error is returned, naming l.
func (p *TCPProxy) Serve(l net.Listener) error {
	p.init()
	if p.LB == nil {
		return ErrNoSelector
	}
	if handled, err := p.serveOnLoops(l); handled {
		return err
	}
	if !p.track(l) {
		return ErrProxyClosed
	}
	defer p.untrack(l)

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if p.closing.Load() {
				return ErrProxyClosed
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("l4: accept on %s: %w", l.Addr(), err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			p.Logger.Warn("l4: accept failed; retrying", "listener", l.Addr().String(), "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if c := p.register(nc); c != nil {
			p.workers.run(func() { p.handle(c) })
		}
	}
}

// temporaryAcceptError reports whether an accept error is worth waiting
// out: a descriptor shortage or a timeout, not a closed listener.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// track records l so that Shutdown and Close can close it; false means
// the proxy is already closing.
func (p *TCPProxy) track(l net.Listener) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing.Load() {
		return false
	}
	p.listeners[l] = struct{}{}
	return true
}

func (p *TCPProxy) untrack(l net.Listener) {
	p.mu.Lock()
	delete(p.listeners, l)
	p.mu.Unlock()
}

// register records a new client connection, or closes it when the proxy
// is closing. Registration under mu, with the closing check, orders every
// wg.Add before Shutdown's wg.Wait.
func (p *TCPProxy) register(nc net.Conn) *tcpConn {
	c := &tcpConn{proxy: p, client: nc, started: time.Now()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing.Load() {
		nc.Close()
		return nil
	}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	p.stats.connections.Add(1)
	p.stats.activeConnections.Add(1)
	return c
}

func (p *TCPProxy) forget(c *tcpConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	decrement(&p.stats.activeConnections)
	p.wg.Done()
}

// handle serves one client connection: it connects to a backend, then
// copies backend to client until that direction ends. The connection's
// last direction to end closes it (see tcpConn.serve).
func (p *TCPProxy) handle(c *tcpConn) {
	if p.keepAlive() == 0 {
		// No idle timeout: keep-alive probes are then the only way to
		// find a vanished client, whatever the listener set.
		if tc, ok := c.client.(*net.TCPConn); ok {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
		}
	}
	key := flowKey(addrPortOf(c.client.RemoteAddr()))
	b, upstream, err := p.connect(key[:], c.client)
	if err != nil {
		p.unservable(c.client.RemoteAddr().String(), err)
		c.client.Close()
		p.forget(c)
		return
	}
	if !c.attach(b, upstream) { // Close came while connecting
		b.Release()
		c.client.Close()
		p.forget(c)
		return
	}
	c.serve(p.idleTimeout())
}

// unservable counts and logs a connection no backend took: Warn, or
// Debug when Close cut it short, which is no fault.
func (p *TCPProxy) unservable(client string, err error) {
	p.stats.drops.Add(1)
	if errors.Is(err, ErrNoBackend) {
		p.stats.noBackend.Add(1)
	}
	level := slog.LevelWarn
	if p.closing.Load() {
		level = slog.LevelDebug
	}
	p.Logger.Log(p.ctx, level, "l4: cannot serve connection", "client", client, "err", err)
}

// closed is the end of a connection that was served: the backend is
// Released, the end logged (Debug), and the connection forgotten.
func (p *TCPProxy) closed(c *tcpConn, err error) {
	c.backend.Release()
	if p.Logger.Enabled(p.ctx, slog.LevelDebug) { // the arguments cost a dozen allocations
		p.Logger.Debug("l4: connection closed", "client", c.client.RemoteAddr().String(), "backend", c.backend.Addr,
			"bytes_in", c.in.Load(), "bytes_out", c.out.Load(),
			"duration", time.Since(c.started), "err", err)
	}
	p.forget(c)
}

// connect selects a backend for key and connects to it for client,
// trying up to MaxRetries other backends when an attempt fails. The
// backend it returns is Acquired; the caller Releases it.
func (p *TCPProxy) connect(key []byte, client net.Conn) (*lb.Backend, net.Conn, error) {
	dial := func(b *lb.Backend) (net.Conn, error) {
		start := time.Now()
		conn, err := p.dial(b, start.Add(p.connectTimeout()))
		if err != nil || p.ProxyProtocol == 0 {
			return conn, err
		}
		if err := p.announce(conn, client, start.Add(p.connectTimeout())); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", b.Addr, err)
		}
		return conn, nil
	}
	return dialAny(p.ctx, p.LB, key, 1+max(p.MaxRetries, 0), dial, &p.stats)
}

// dial connects to b by deadline: with the proxy's own dialer where it
// has one and b's address is an IP address and port, with net.Dialer
// otherwise (a host name, a Unix socket).
func (p *TCPProxy) dial(b *lb.Backend, deadline time.Time) (net.Conn, error) {
	if b.Network() == "tcp" {
		if conn, ok, err := dialBackendTCP(p.ctx, b.DialAddr(), deadline, p.keepAlive() == 0); ok {
			return conn, err
		}
	}
	d := net.Dialer{Deadline: deadline, KeepAlive: p.keepAlive()}
	return d.DialContext(p.ctx, b.Network(), b.DialAddr())
}

// keepAlive is the Dialer.KeepAlive of backend connections: none when an
// idle timeout is set, since the watchdog ends a connection whose peer
// vanished, and keep-alive probes would cost four setsockopt(2) calls a
// connection for nothing; Go's default otherwise, as the only way to find
// a dead peer.
func (p *TCPProxy) keepAlive() time.Duration {
	if p.idleTimeout() > 0 {
		return -1
	}
	return 0
}

// announce writes the PROXY protocol header for client on the new backend
// connection conn, by deadline.
func (p *TCPProxy) announce(conn, client net.Conn, deadline time.Time) error {
	h := proxyproto.Proxied(p.ProxyProtocol, addrPortOf(client.RemoteAddr()), addrPortOf(client.LocalAddr()))
	conn.SetWriteDeadline(deadline)
	if _, err := h.WriteTo(conn); err != nil {
		return fmt.Errorf("send PROXY protocol header: %w", err)
	}
	return conn.SetWriteDeadline(time.Time{})
}

// Shutdown stops the proxy gracefully: it closes the listeners, lets every
// connection run until both its sides have finished, and returns nil when
// none is left. If ctx ends first, it closes the remaining connections,
// waits for their goroutines, and returns ctx's error.
func (p *TCPProxy) Shutdown(ctx context.Context) error {
	p.init()
	p.stopAccepting()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		p.cancel() // lets the idle workers go
		p.stopLoops()
		p.pipes.close()
		return nil
	case <-ctx.Done():
		p.closeAll()
		<-done
		p.stopLoops()
		p.pipes.close()
		return ctx.Err()
	}
}

// Close stops the proxy at once: it closes the listeners and every
// connection, and returns when their goroutines have ended.
func (p *TCPProxy) Close() error {
	p.init()
	p.stopAccepting()
	p.closeAll()
	p.wg.Wait()
	p.stopLoops()
	p.pipes.close()
	return nil
}

// Stats returns a snapshot of the proxy's counters.
func (p *TCPProxy) Stats() Stats { return p.stats.Snapshot() }

// stopAccepting closes the listeners; when it returns, no connection
// will be accepted any more.
func (p *TCPProxy) stopAccepting() {
	p.mu.Lock()
	if !p.closing.Swap(true) {
		close(p.stopAccept)
	}
	for l := range p.listeners {
		l.Close()
	}
	p.mu.Unlock()
	p.stopLoopListeners()
}

// closeAll cancels connection attempts and cuts every connection.
func (p *TCPProxy) closeAll() {
	p.cancel()
	p.mu.Lock()
	conns := make([]*tcpConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.abort()
	}
	p.abortLoopFlows()
}

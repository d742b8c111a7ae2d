package l7

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"golang.org/x/net/http2"
)

// staleCheckAfter is how long a connection may sit idle before it is
// probed for a close from the upstream before reuse. Upstreams keep idle
// connections for seconds at least, so a recently used one is trusted and
// the probe's system call is saved on the hot path.
const staleCheckAfter = time.Second

// upstreamConn is one connection to an upstream with its buffers.
type upstreamConn struct {
	conn net.Conn // the TLS conn when TLS is on
	raw  net.Conn // the transport under it, for liveness probes
	io   rawIO    // reads and writes conn for src and w
	// src is r's source: io, counted, and made to send the client what
	// it holds before waiting for the upstream.
	src       upstreamSource
	dl        deadlines
	r         *h1.Reader
	w         *bufio.Writer
	key       poolKey
	idleSince time.Time
	reused    bool
}

func (c *upstreamConn) close() {
	c.conn.Close()
	c.r.Release()
	if c.w != nil {
		c.w.Reset(nil)
	}
}

// shed gives c's buffers back while it waits in the pool, so that idle
// connections cost their sockets only: a pool of thousands (the benchmark
// keeps up to 4096, the default 128 per upstream) would otherwise hold a
// read and a write buffer each. Buffers with bytes in them are kept.
func (c *upstreamConn) shed(bufs *sync.Pool) {
	c.r.Shed()
	if c.w.Buffered() == 0 {
		c.w.Reset(nil)
		bufs.Put(c.w)
		c.w = nil
	}
}

// unshed gives c a writer, when it is dialled and again when it leaves the
// pool; its reader takes a buffer at its first read.
func (c *upstreamConn) unshed(bufs *sync.Pool) {
	if c.w == nil {
		c.w = bufs.Get().(*bufio.Writer)
		c.w.Reset(&c.io)
	}
}

// upstreamSource is the source of an upstream connection's reader. It
// counts the bytes that arrive, so that a failed exchange knows whether
// the upstream said anything at all (only a connection that closed before
// any response byte may see its request resent), and it keeps the proxy
// from sitting on bytes meant for the client while it waits for more.
type upstreamSource struct {
	io *rawIO
	// received counts the bytes read from the connection in its life.
	received int64
	// held, while a response is relayed, is the client's write buffer:
	// what it holds is sent before any read that may wait on the
	// upstream, so bytes reach the client as they arrive, whatever the
	// response's framing and however the client's side buffers.
	held *bufio.Writer
}

func (s *upstreamSource) Read(p []byte) (int, error) {
	if err := sendHeld(s.held); err != nil {
		return 0, err
	}
	n, err := s.io.Read(p)
	s.received += int64(n)
	return n, err
}

// sendHeld sends what held (the client's write buffer, or nil) holds,
// before a read that may wait on the upstream. Its failure is the
// client's. It runs before every upstream read, so the common case,
// nothing held, is kept small enough to be inlined.
func sendHeld(held *bufio.Writer) error {
	if held == nil || held.Buffered() == 0 {
		return nil
	}
	return flushHeld(held)
}

func flushHeld(held *bufio.Writer) error {
	if err := held.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrDownstream, err)
	}
	return nil
}

// Pool keeps idle upstream connections for reuse, up to a bound per peer
// key. It is safe for concurrent use.
type Pool struct {
	maxIdle int

	mu     sync.Mutex
	idle   map[poolKey][]*upstreamConn
	tlsCfg map[poolKey]*tls.Config
	h2     map[poolKey]*http2.ClientConn
	// h2dialing holds a channel, closed when done, per key being dialled
	// for HTTP/2; h1only the keys whose upstream declined HTTP/2.
	h2dialing map[poolKey]chan struct{}
	h1only    map[poolKey]bool
	closed    bool

	// h2t makes HTTP/2 client connections out of connections the pool
	// dialled; it never dials itself.
	h2t *http2.Transport

	bufs sync.Pool // *bufio.Writer
}

// NewPool returns a Pool keeping at most maxIdle idle connections per
// peer key. maxIdle 0 disables reuse.
func NewPool(maxIdle int) *Pool {
	return &Pool{
		maxIdle:   maxIdle,
		idle:      map[poolKey][]*upstreamConn{},
		tlsCfg:    map[poolKey]*tls.Config{},
		h2:        map[poolKey]*http2.ClientConn{},
		h2dialing: map[poolKey]chan struct{}{},
		h1only:    map[poolKey]bool{},
		h2t:       &http2.Transport{AllowHTTP: true, StrictMaxConcurrentStreams: false},
		// 4 KiB holds a request head and a small body; larger bodies are
		// written past it. With 3,200 HTTP/2 streams in flight, each on
		// its own upstream connection, 16 KiB writers made peak RSS 15 %
		// higher (h2 scenario, 2 runs each: 119-127 against 105-108 MiB).
		bufs: sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }},
	}
}

// get returns an idle connection for key, newest first, dropping those
// that outlived idleTimeout or that the upstream has closed.
func (p *Pool) get(key poolKey, idleTimeout time.Duration) *upstreamConn {
	now := time.Now()
	for {
		p.mu.Lock()
		stack := p.idle[key]
		if len(stack) == 0 {
			p.mu.Unlock()
			return nil
		}
		c := stack[len(stack)-1]
		stack[len(stack)-1] = nil
		p.idle[key] = stack[:len(stack)-1]
		p.mu.Unlock()

		idle := now.Sub(c.idleSince)
		if idle > idleTimeout || (idle > staleCheckAfter && !alive(c.raw)) {
			c.close()
			continue
		}
		c.reused = true
		c.unshed(&p.bufs)
		return c
	}
}

// put returns c to the pool, or closes it when the pool is full or closed.
func (p *Pool) put(c *upstreamConn) {
	c.idleSince = time.Now()
	c.shed(&p.bufs)
	p.mu.Lock()
	limit := p.maxIdle
	if c.key.owner != nil {
		limit = min(limit, maxPrivateIdle)
	}
	if p.closed || len(p.idle[c.key]) >= limit || c.key.owner != nil && !p.own(c.key) {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle[c.key] = append(p.idle[c.key], c)
	p.mu.Unlock()
}

// dropKey closes every idle connection for key: when one turned out
// stale, the upstream has likely restarted and the rest are stale too.
func (p *Pool) dropKey(key poolKey) {
	p.mu.Lock()
	stack := p.idle[key]
	delete(p.idle, key)
	cc := p.h2[key]
	delete(p.h2, key)
	p.mu.Unlock()
	for _, c := range stack {
		c.close()
	}
	if cc != nil {
		cc.Close()
	}
}

// Close closes every idle connection; later puts close theirs.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	idle, h2 := p.idle, p.h2
	p.idle, p.h2 = map[poolKey][]*upstreamConn{}, map[poolKey]*http2.ClientConn{}
	p.mu.Unlock()
	for _, cc := range h2 {
		cc.Close()
	}
	for _, stack := range idle {
		for _, c := range stack {
			c.close()
		}
	}
}

// Idle returns the number of idle connections kept, for tests and metrics.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.idle {
		n += len(s)
	}
	return n
}

// connect returns a connection for peer under key (from
// request.poolKey): a multiplexed HTTP/2 one when the peer speaks it
// (cc), or else a pooled or new HTTP/1.1 one (uc).
func (p *Pool) connect(peer *Peer, key poolKey) (uc *upstreamConn, cc *http2.ClientConn, dialed time.Duration, err error) {
	if peer.ALPN != ALPNH1 && !p.knownH1(key) {
		return p.connectH2(peer, key)
	}
	if uc := p.get(key, peer.Timeouts.withDefaults().Idle); uc != nil {
		return uc, nil, 0, nil
	}
	start := time.Now()
	uc, err = p.dial(context.Background(), peer, key)
	return uc, nil, max(time.Since(start), 1), err
}

// connectH2 returns the shared HTTP/2 connection for key, dialling it
// when there is none. One request dials while the others wait for it, so
// a burst of first requests opens one connection, not one each.
func (p *Pool) connectH2(peer *Peer, key poolKey) (*upstreamConn, *http2.ClientConn, time.Duration, error) {
	for {
		if cc := p.getH2(key); cc != nil {
			return nil, cc, 0, nil
		}
		p.mu.Lock()
		if wait := p.h2dialing[key]; wait != nil {
			p.mu.Unlock()
			<-wait
			if p.knownH1(key) {
				return p.connect(peer, key)
			}
			continue
		}
		done := make(chan struct{})
		p.h2dialing[key] = done
		p.mu.Unlock()

		start := time.Now()
		uc, cc, err := p.dialH2(peer, key)
		dialed := max(time.Since(start), 1)
		p.mu.Lock()
		delete(p.h2dialing, key)
		p.mu.Unlock()
		close(done)
		return uc, cc, dialed, err
	}
}

func (p *Pool) dialH2(peer *Peer, key poolKey) (*upstreamConn, *http2.ClientConn, error) {
	uc, err := p.dial(context.Background(), peer, key)
	if err != nil {
		return nil, nil, err
	}
	if !speaksH2(peer, uc) {
		// The upstream chose HTTP/1.1: pool its connections as such.
		p.mu.Lock()
		p.h1only[key.shared()] = true
		p.mu.Unlock()
		return uc, nil, nil
	}
	cc, err := p.addH2(key, uc)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: http/2: %w", ErrUpstreamConnect, peer.Addr, err)
	}
	return nil, cc, nil
}

// knownH1 reports whether the peer key negotiated HTTP/1.1 before.
func (p *Pool) knownH1(key poolKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h1only[key.shared()]
}

// speaksH2 reports whether a new connection is to be used for HTTP/2: TLS
// negotiated it, or the peer is plain and configured for HTTP/2 only
// (prior-knowledge h2c).
func speaksH2(peer *Peer, uc *upstreamConn) bool {
	if tc, ok := uc.conn.(*tls.Conn); ok {
		return tc.ConnectionState().NegotiatedProtocol == "h2"
	}
	return peer.ALPN == ALPNH2 || peer.ALPN == ALPNH2C
}

// dial opens a new connection to peer under key: the PROXY protocol
// header first when the key asks for it, then TLS when the peer does.
func (p *Pool) dial(ctx context.Context, peer *Peer, key poolKey) (*upstreamConn, error) {
	t := peer.Timeouts.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, t.Connect)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, peer.network(), peer.dialAddr())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUpstreamConnect, peer.Addr, err)
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if key.proxy != 0 {
		deadline, _ := ctx.Deadline()
		if err := announce(raw, key, deadline); err != nil {
			raw.Close()
			return nil, fmt.Errorf("%w: %s: %w", ErrUpstreamConnect, peer.Addr, err)
		}
	}
	conn := raw
	if peer.TLS {
		tc := tls.Client(raw, p.tlsConfig(peer))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("%w: %s: %w: %w", ErrUpstreamConnect, peer.Addr, errUpstreamTLS, err)
		}
		conn = tc
	}
	uc := newUpstreamConn(conn, raw, key)
	uc.unshed(&p.bufs)
	return uc, nil
}

// newUpstreamConn wraps conn, a connection to key over the transport raw,
// with its reader; it gets its writer from unshed.
func newUpstreamConn(conn, raw net.Conn, key poolKey) *upstreamConn {
	uc := &upstreamConn{conn: conn, raw: raw, key: key, dl: deadlines{conn: conn}}
	uc.io.init(conn)
	uc.src.io = &uc.io
	uc.r = h1.NewReader(&uc.src)
	return uc
}

// tlsConfig returns the client config for peer's key, shared by every
// connection with that key so TLS sessions resume.
func (p *Pool) tlsConfig(peer *Peer) *tls.Config {
	key := peer.key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if cfg := p.tlsCfg[key]; cfg != nil {
		return cfg
	}
	name := peer.SNI
	if name == "" {
		if host, _, err := net.SplitHostPort(peer.Addr); err == nil {
			name = host
		}
	}
	cfg := &tls.Config{
		ServerName:         name,
		InsecureSkipVerify: peer.InsecureSkipVerify,
		RootCAs:            peer.RootCAs,
		NextProtos:         peer.ALPN.protos(),
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	p.tlsCfg[key] = cfg
	return cfg
}

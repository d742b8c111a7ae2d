package l4

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

	"github.com/weir-lb/weir/pkg/lb"
)

// Defaults for the UDPProxy fields left at zero.
const (
	// DefaultUDPIdleTimeout is how long a UDP flow lives without a
	// datagram either way.
	DefaultUDPIdleTimeout = 30 * time.Second
	// DefaultMaxFlows bounds the flows open at once.
	DefaultMaxFlows = 65536
)

const (
	// maxDatagram fits the largest UDP payload (65,507 bytes over IPv4,
	// 65,527 over IPv6), so no datagram is ever truncated.
	maxDatagram = 64 << 10
	// udpDialTimeout bounds opening a flow's socket, which only resolves
	// a backend given by name: connecting a UDP socket sends nothing.
	udpDialTimeout = 2 * time.Second
	// udpDialAttempts is how many backends a new flow may try when its
	// socket cannot be opened (an unroutable or unresolvable backend).
	udpDialAttempts = 3
	// warnInterval is the least time between two Warn records of flows
	// that could not be opened.
	warnInterval = time.Second
	// maxSweepInterval bounds the wait between two sweeps for expired
	// flows, so that a long IdleTimeout is still kept to within a second.
	maxSweepInterval = time.Second
)

// UDPProxy forwards UDP datagrams to backends chosen by LB, flow by flow.
//
// A flow is one client address and port on one served socket. Its first
// datagram selects a backend with the flow's address and port as key and
// opens a UDP socket connected to it; later datagrams go through the same
// socket, and the backend's replies, read by the flow's goroutine, are sent
// back to the client from the served socket. A flow ends after IdleTimeout
// without a datagram either way. Before each datagram the proxy checks,
// through LB, that the flow's backend is still usable (healthy, enabled,
// still in the pool); if not, the flow moves to a newly selected backend.
// At most MaxFlows flows are open at once: a datagram that would open one
// more is dropped and counted.
//
// Forwarding a datagram allocates nothing once its flow exists: buffers
// come from a pool, and a flow's goroutine holds a buffer only while it
// has a reply in hand, so an idle flow costs a socket, a goroutine and a
// few hundred bytes.
//
// Set the fields before the first Serve and do not change them after.
// The methods are safe for concurrent use.
type UDPProxy struct {
	// LB chooses the backends. Required.
	LB Selector
	// IdleTimeout is how long a flow lives without a datagram either way;
	// 0 or less means DefaultUDPIdleTimeout.
	IdleTimeout time.Duration
	// MaxFlows bounds the flows open at once; 0 or less means
	// DefaultMaxFlows.
	MaxFlows int
	// Logger receives flows that could not be opened (Warn, at most once
	// a second, Debug otherwise), and flow openings, moves and ends
	// (Debug); nil discards.
	Logger *slog.Logger

	once   sync.Once
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	epoch  time.Time // flow activity times are nanoseconds since epoch
	bufs   *bufferPool
	stats  counters
	stop   chan struct{} // closed by Close: ends the sweeper
	// lastWarn is when a failure was last logged at Warn (see failureLevel).
	lastWarn atomic.Int64

	closing   atomic.Bool
	mu        sync.Mutex // guards listeners and flows
	listeners map[*udpListener]struct{}
	flows     map[flowID]*flow
	wg        sync.WaitGroup // the sweeper and every flow's goroutine
}

// udpListener is one socket served by Serve.
type udpListener struct {
	pc   net.PacketConn
	conn packetConn
}

// flowID names a flow: the client, on the socket it sent to.
type flowID struct {
	l      *udpListener
	client netip.AddrPort
}

func (p *UDPProxy) init() {
	p.once.Do(func() {
		if p.Logger == nil {
			p.Logger = slog.New(slog.DiscardHandler)
		}
		p.ctx, p.cancel = context.WithCancel(context.Background())
		p.epoch = time.Now()
		p.bufs = newBufferPool(maxDatagram)
		p.stop = make(chan struct{})
		p.listeners = map[*udpListener]struct{}{}
		p.flows = map[flowID]*flow{}
		p.wg.Go(p.sweeper)
	})
}

func (p *UDPProxy) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return DefaultUDPIdleTimeout
}

func (p *UDPProxy) maxFlows() int {
	if p.MaxFlows > 0 {
		return p.MaxFlows
	}
	return DefaultMaxFlows
}

// now is the monotonic clock flows record their activity with.
func (p *UDPProxy) now() int64 { return int64(time.Since(p.epoch)) }

// Serve reads datagrams from pc and forwards them, until Close, when it
// returns ErrProxyClosed. Any other read error is returned, naming pc. A
// *net.UDPConn is served without allocations; another PacketConn must
// report *net.UDPAddr sources, and costs an allocation or two a datagram.
func (p *UDPProxy) Serve(pc net.PacketConn) error {
	if p.LB == nil {
		return ErrNoSelector // before init, which starts the sweeper
	}
	p.init()
	l := &udpListener{pc: pc, conn: packetConnOf(pc)}
	if !p.track(l) {
		return ErrProxyClosed
	}
	defer p.untrack(l)
	bp := p.bufs.get()
	defer p.bufs.put(bp)
	buf := *bp
	for {
		n, client, err := l.conn.readFrom(buf)
		if err != nil {
			if p.closing.Load() {
				return ErrProxyClosed
			}
			if errors.Is(err, ErrUnsupportedAddr) {
				p.stats.drops.Add(1)
				p.Logger.Debug("l4: datagram dropped", "socket", pc.LocalAddr().String(), "err", err)
				continue
			}
			return fmt.Errorf("l4: read from %s: %w", pc.LocalAddr(), err)
		}
		p.forward(flowID{l, client}, buf[:n])
	}
}

// forward sends one client datagram to its flow's backend.
func (p *UDPProxy) forward(id flowID, d []byte) {
	f := p.flowFor(id)
	if f == nil {
		return // dropped and counted
	}
	if _, err := f.conn.Write(d); err != nil {
		// Typically ECONNREFUSED: an ICMP port unreachable from the
		// backend, reported on its connected socket. Health checks decide
		// whether the backend is down; the datagram is lost either way.
		p.stats.drops.Add(1)
		p.Logger.Debug("l4: datagram to backend failed", "client", id.client.String(), "backend", f.backend.Addr, "err", err)
		return
	}
	p.stats.datagrams.Add(1)
	p.stats.bytesIn.Add(uint64(len(d)))
	if c := f.counters; c != nil {
		c.packets.Add(1)
		c.bytes.Add(uint64(len(d)))
	}
}

// flowFor returns the flow of id, open and on a usable backend: the
// existing one, the existing one moved to another backend, or a new one.
// It returns nil, having counted the drop, when there is none.
func (p *UDPProxy) flowFor(id flowID) *flow {
	now := p.now()
	p.mu.Lock()
	f := p.flows[id]
	if f != nil {
		// Touched under mu, so a sweep that runs now sees it active.
		f.touch(now)
	}
	p.mu.Unlock()
	switch {
	case f == nil:
		return p.open(id, nil)
	case p.usable(f):
		return f
	default:
		return p.open(id, f)
	}
}

// usable reports whether f's backend is still one LB would serve the
// flow's key with: healthy, enabled and in the pool. It asks LB with an
// accept predicate that admits f's backend alone, so it costs one lookup
// when that backend is the key's first choice.
func (p *UDPProxy) usable(f *flow) bool {
	_, ok := p.LB.SelectWith(f.key[:], anyCandidate, f.ownBackend)
	return ok
}

// open opens a flow for id, replacing old (nil for a new client), and
// returns it; or it drops the datagram, counts why, and returns nil.
func (p *UDPProxy) open(id flowID, old *flow) *flow {
	if old == nil && p.flowCount() >= p.maxFlows() {
		p.dropForLimit()
		return nil
	}
	key := flowKey(id.client)
	b, conn, err := dialAny(p.ctx, p.LB, key[:], udpDialAttempts, p.dial, &p.stats)
	if err != nil {
		p.stats.drops.Add(1)
		if errors.Is(err, ErrNoBackend) {
			p.stats.noBackend.Add(1)
		}
		if old != nil {
			p.remove(old)
		}
		p.Logger.Log(p.ctx, p.failureLevel(), "l4: cannot open UDP flow; datagram dropped", "client", id.client.String(), "err", err)
		return nil
	}
	f := newFlow(id, key, b, conn.(*net.UDPConn), p)
	if !p.insert(f, old) {
		f.close()
		return nil
	}
	if old != nil {
		old.close()
		p.stats.movedFlows.Add(1)
		p.Logger.Debug("l4: UDP flow moved", "client", id.client.String(), "from", old.backend.Addr, "to", b.Addr)
	} else {
		p.Logger.Debug("l4: UDP flow opened", "client", id.client.String(), "backend", b.Addr)
	}
	return f
}

// failureLevel is Warn at most once per warnInterval and Debug otherwise:
// a client retrying while no backend is up must not flood the log with a
// line per datagram. Stats count every drop.
func (p *UDPProxy) failureLevel() slog.Level {
	now, last := p.now(), p.lastWarn.Load()
	if (last == 0 || now-last >= int64(warnInterval)) && p.lastWarn.CompareAndSwap(last, now) {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// dial opens a UDP socket connected to b. Connecting sends nothing; it
// only fixes the socket's peer, so replies from anyone else are ignored.
func (p *UDPProxy) dial(b *lb.Backend) (net.Conn, error) {
	if b.Network() == "unix" {
		return nil, fmt.Errorf("backend %s: a UDP flow needs an ip:port or host:port backend", b.Addr)
	}
	d := net.Dialer{Timeout: udpDialTimeout}
	c, err := d.DialContext(p.ctx, "udp", b.DialAddr())
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*net.UDPConn); !ok {
		c.Close()
		return nil, fmt.Errorf("backend %s: dial returned a %T, not a UDP socket", b.Addr, c)
	}
	return c, nil
}

func (p *UDPProxy) flowCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.flows)
}

func (p *UDPProxy) dropForLimit() {
	p.stats.drops.Add(1)
	p.stats.flowLimitDrops.Add(1)
}

// insert publishes f in place of old (nil: as a new flow) and starts its
// reply goroutine. It reports false, having counted the drop, when the
// proxy is closing, old was removed meanwhile, or the table is full.
func (p *UDPProxy) insert(f, old *flow) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closing.Load():
		p.stats.drops.Add(1)
		return false
	case old != nil && p.flows[f.id] != old:
		// Expired or closed while its successor was dialled: the client
		// is not lost, its next datagram opens a flow afresh.
		p.stats.drops.Add(1)
		return false
	case old == nil && (p.flows[f.id] != nil || len(p.flows) >= p.maxFlows()):
		p.dropForLimit()
		return false
	}
	p.flows[f.id] = f
	p.stats.flows.Add(1)
	p.wg.Go(func() { p.relayReplies(f) })
	return true
}

// remove takes f out of the table, if it is still there, and closes it.
func (p *UDPProxy) remove(f *flow) {
	p.mu.Lock()
	if p.flows[f.id] == f {
		delete(p.flows, f.id)
	}
	p.mu.Unlock()
	f.close()
}

// relayReplies sends f's backend's datagrams to f's client until f closes.
func (p *UDPProxy) relayReplies(f *flow) {
	for {
		bp, n, err := f.receive()
		if err != nil {
			switch {
			case f.isClosed():
				return
			case errors.Is(err, syscall.ECONNREFUSED):
				// An ICMP port unreachable for an earlier datagram: the
				// backend's health checks judge it; keep the flow.
				continue
			}
			p.Logger.Debug("l4: UDP flow failed", "client", f.id.client.String(), "backend", f.backend.Addr, "err", err)
			p.remove(f)
			return
		}
		f.touch(p.now())
		_, err = f.id.l.conn.writeTo((*bp)[:n], f.id.client)
		p.bufs.put(bp)
		if err != nil {
			p.stats.drops.Add(1)
			continue
		}
		p.stats.replies.Add(1)
		p.stats.bytesOut.Add(uint64(n))
	}
}

// sweeper closes expired flows, sweeping the table at a fraction of
// IdleTimeout so a flow ends at most a quarter late (or a second, for
// long timeouts), with one goroutine whatever the number of flows.
func (p *UDPProxy) sweeper() {
	idle := p.idleTimeout()
	interval := min(max(idle/4, time.Millisecond), maxSweepInterval)
	t := time.NewTicker(interval)
	defer t.Stop()
	var expired []*flow
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			expired = p.sweep(expired[:0], int64(idle))
			clear(expired) // let closed flows be collected
		}
	}
}

// sweep removes and closes the flows idle for at least idle nanoseconds,
// collecting them in expired (returned, to be reused).
func (p *UDPProxy) sweep(expired []*flow, idle int64) []*flow {
	now := p.now()
	p.mu.Lock()
	for id, f := range p.flows {
		if now-f.lastActive.Load() >= idle {
			delete(p.flows, id)
			expired = append(expired, f)
		}
	}
	p.mu.Unlock()
	for _, f := range expired {
		f.close()
		p.stats.expiredFlows.Add(1)
		p.Logger.Debug("l4: UDP flow expired", "client", f.id.client.String(), "backend", f.backend.Addr)
	}
	return expired
}

func (p *UDPProxy) track(l *udpListener) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing.Load() {
		return false
	}
	p.listeners[l] = struct{}{}
	return true
}

// untrack forgets l and ends its flows, whose replies could no longer be
// sent.
func (p *UDPProxy) untrack(l *udpListener) {
	var orphans []*flow
	p.mu.Lock()
	delete(p.listeners, l)
	for id, f := range p.flows {
		if id.l == l {
			delete(p.flows, id)
			orphans = append(orphans, f)
		}
	}
	p.mu.Unlock()
	for _, f := range orphans {
		f.close()
	}
}

// Close stops the proxy: it closes the served sockets, so every Serve
// returns ErrProxyClosed, and every flow, and returns when the flows'
// goroutines and the sweeper have ended. Call it once done with a proxy
// that served, even if Serve failed: the sweeper runs until then.
func (p *UDPProxy) Close() error {
	p.init()
	p.mu.Lock()
	if p.closing.Swap(true) {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	listeners, flows := p.listeners, p.flows
	p.listeners, p.flows = map[*udpListener]struct{}{}, map[flowID]*flow{}
	p.mu.Unlock()

	p.cancel()
	close(p.stop)
	for l := range listeners {
		l.pc.Close()
	}
	for _, f := range flows {
		f.close()
	}
	p.wg.Wait()
	return nil
}

// Stats returns a snapshot of the proxy's counters.
func (p *UDPProxy) Stats() Stats { return p.stats.Snapshot() }

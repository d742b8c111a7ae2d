package l4

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/weir-lb/weir/pkg/lb"
)

// flow is one client's UDP flow: a socket connected to its backend.
// Everything but lastActive and closed is fixed at creation; a flow that
// moves to another backend is replaced by a new flow.
type flow struct {
	id      flowID
	key     [flowKeyLen]byte
	backend *lb.Backend // Acquired for the flow's life
	// counters are the backend's share, nil when it has none.
	counters *BackendCounters
	conn     *net.UDPConn
	raw      syscall.RawConn
	bufs     *bufferPool
	stats    *counters

	// ownBackend accepts f's backend alone; made once so that checking
	// the backend for every datagram allocates nothing.
	ownBackend func(*lb.Backend) bool

	lastActive atomic.Int64 // UDPProxy.now of the last datagram either way
	closed     atomic.Bool
	closeOnce  sync.Once

	// The receive state, used by the flow's reply goroutine alone (see
	// receive); readReady is made once, for the same reason as ownBackend.
	readReady func(fd uintptr) bool
	rbuf      *[]byte
	rn        int
	rerr      error
}

// newFlow wraps a connected socket to b, already Acquired, as the flow id.
func newFlow(id flowID, key [flowKeyLen]byte, b *lb.Backend, conn *net.UDPConn, p *UDPProxy) *flow {
	f := &flow{id: id, key: key, backend: b, counters: countersOf(b), conn: conn, bufs: p.bufs, stats: &p.stats}
	addr := b.Addr
	f.ownBackend = func(c *lb.Backend) bool { return c.Addr == addr }
	f.initReceive()
	f.touch(p.now())
	p.stats.activeFlows.Add(1)
	return f
}

func (f *flow) touch(now int64) { f.lastActive.Store(now) }

func (f *flow) isClosed() bool { return f.closed.Load() }

// close closes the socket, which ends the reply goroutine, and releases
// the backend. It runs once however often it is called.
func (f *flow) close() {
	f.closeOnce.Do(func() {
		f.closed.Store(true)
		f.conn.Close()
		f.backend.Release()
		decrement(&f.stats.activeFlows)
	})
}

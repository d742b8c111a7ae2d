package l4

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
)

// copyBufferSize is the buffer of a copy that cannot splice (a side that
// is not a TCP or Unix socket), and of a TCP copy's first bytes: a read
// that fills it switches that copy to splice(2).
const copyBufferSize = 32 << 10

// idleChecksPerTimeout is how many times per IdleTimeout a connection is
// checked for activity: a connection is closed between IdleTimeout and
// IdleTimeout plus a quarter after its last byte moved.
const idleChecksPerTimeout = 4

// tcpConn is one proxied connection: the client side, and once connected,
// the backend side.
type tcpConn struct {
	proxy   *TCPProxy
	client  net.Conn
	started time.Time

	// in and out count the bytes copied client→backend and
	// backend→client, a chunk at a time.
	in, out atomic.Uint64
	// ended counts the directions whose source reached its end, running
	// those still copying.
	ended, running atomic.Int32
	// upErr and downErr are what ended each direction, nil for the end
	// of its source; each is written by its direction before it counts
	// itself out of running.
	upErr, downErr error

	// mu guards the fields below; the idle watchdog and abort take it.
	mu       sync.Mutex
	upstream net.Conn
	backend  *lb.Backend
	// counters are the backend's share, nil when it has none; set with
	// backend, before the copying starts.
	counters *BackendCounters
	aborted  bool // abort ran: both sockets are closed
	finished bool // both directions ended: the watchdog must not re-arm
	idle     idleWatch
}

// notRead is the activity reading of a watchdog that has not read yet;
// no real reading reaches it.
const notRead = ^uint64(0)

// idleWatch is the state of a connection's idle watchdog.
type idleWatch struct {
	timeout    time.Duration
	timer      *time.Timer
	activity   uint64    // the last activity reading
	lastChange time.Time // when the reading last changed
	expired    bool      // the watchdog closed the connection
}

// attach sets the backend side, or closes it and reports false when the
// connection was aborted while connecting.
func (c *tcpConn) attach(b *lb.Backend, upstream net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		upstream.Close()
		return false
	}
	c.backend, c.upstream, c.counters = b, upstream, countersOf(b)
	return true
}

// abort closes both sides, which ends both copies.
func (c *tcpConn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abortLocked()
}

func (c *tcpConn) abortLocked() {
	if c.aborted {
		return
	}
	c.aborted = true
	c.client.Close()
	if c.upstream != nil {
		c.upstream.Close()
	}
}

// serve copies both ways: client to backend on a worker, backend to
// client on the calling goroutine, and returns when the latter ends. The
// last direction to end, whichever it is, closes the connection and hands
// it to the proxy's closed with what ended it — the idle timeout (idle, 0
// for none), or each direction's error, nil when both sides finished
// cleanly. So neither goroutine waits for the other: a wait would cost a
// park and a wake-up a connection.
func (c *tcpConn) serve(idle time.Duration) {
	c.startIdleWatch(idle)
	c.running.Store(2)
	c.proxy.workers.run(c.clientToBackend)
	c.backendToClient()
}

func (c *tcpConn) clientToBackend() {
	if err := c.copyHalf(c.upstream, c.client, &c.in, &c.proxy.stats.bytesIn); err != nil {
		c.upErr = fmt.Errorf("client to backend %s: %w", c.backend.Addr, err)
	}
	c.directionEnded()
}

func (c *tcpConn) backendToClient() {
	if err := c.copyHalf(c.client, c.upstream, &c.out, &c.proxy.stats.bytesOut); err != nil {
		c.downErr = fmt.Errorf("backend %s to client: %w", c.backend.Addr, err)
	}
	c.directionEnded()
}

// directionEnded closes the connection when the other direction has
// ended too. The atomic count orders each direction's error before the
// last one reads both.
func (c *tcpConn) directionEnded() {
	if c.running.Add(-1) > 0 {
		return
	}
	c.mu.Lock()
	c.finished = true
	if c.idle.timer != nil {
		c.idle.timer.Stop()
	}
	expired := c.idle.expired
	c.abortLocked()
	c.mu.Unlock()
	err := errors.Join(c.upErr, c.downErr)
	if expired {
		c.proxy.stats.idleTimeouts.Add(1)
		err = fmt.Errorf("closed: no byte moved either way for %v", c.idle.timeout)
	}
	c.proxy.closed(c, err)
}

// copyHalf copies src to dst until src ends, then half-closes dst so its
// peer sees the end too. Between two TCP sockets on Linux the bytes move
// in the kernel (spliceTCP); otherwise through a buffer. The counters
// advance with every write, so that they show a long transfer as it
// runs. An error closes both sides, so the other direction ends as well.
func (c *tcpConn) copyHalf(dst, src net.Conn, conn, total *atomic.Uint64) error {
	// Bytes towards the backend count in its share too.
	var backend *atomic.Uint64
	if conn == &c.in && c.counters != nil {
		backend = &c.counters.bytes
	}
	count := func(n int) {
		conn.Add(uint64(n))
		total.Add(uint64(n))
		if backend != nil {
			backend.Add(uint64(n))
		}
	}
	handled, err := spliceTCP(c.proxy.pipes, c.proxy.bufs, dst, src, count)
	if !handled {
		err = c.copyChunks(dst, src, count)
	}
	if err != nil {
		c.abort()
		return err
	}
	if c.ended.Add(1) == 2 {
		// The other way ended cleanly already, so dst has nothing left
		// to read either: the connection's close sends the FIN, and a
		// shutdown(2) first would be one more system call for nothing.
		return nil
	}
	return c.closeWrite(dst)
}

// copyChunks copies src to dst with io.Copy, in chunks of copyChunk so
// that count sees a long transfer as it runs. A Unix socket to a TCP
// socket still splices (TCPConn.ReadFrom); other pairs go through one
// pooled buffer.
func (c *tcpConn) copyChunks(dst, src net.Conn, count func(int)) error {
	var w io.Writer = dst
	var buf []byte
	if !spliceable(dst, src) {
		// Hide dst's ReadFrom, which would allocate its own buffer for
		// every chunk, and copy through one pooled buffer instead.
		w = struct{ io.Writer }{dst}
		b := c.proxy.bufs.get()
		defer c.proxy.bufs.put(b)
		buf = *b
	}
	chunk := io.LimitedReader{R: src}
	for {
		chunk.N = copyChunk
		n, err := io.CopyBuffer(w, &chunk, buf)
		count(int(n))
		if err != nil || chunk.N > 0 { // an error, or src reached EOF
			return err
		}
	}
}

// spliceable reports whether io.Copy from src to dst runs in the kernel:
// dst must read from src itself (ReadFrom), and src must be a socket the
// runtime can splice from.
func spliceable(dst, src net.Conn) bool {
	if _, ok := dst.(io.ReaderFrom); !ok {
		return false
	}
	switch src.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// closeWrite tells dst's peer that no more bytes will come. A side that
// cannot half-close is closed whole, the only way to send the end.
func (c *tcpConn) closeWrite(dst net.Conn) error {
	handled, err := shutdownWrite(dst)
	if !handled {
		hc, ok := dst.(interface{ CloseWrite() error })
		if !ok {
			c.abort()
			return nil
		}
		err = hc.CloseWrite()
	}
	if err != nil && !c.wasAborted() {
		c.abort()
		return fmt.Errorf("half-close: %w", err)
	}
	return nil
}

func (c *tcpConn) wasAborted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aborted
}

// startIdleWatch arms the idle watchdog (idle 0: none). The watchdog reads
// the connection's activity — bytes the kernel received or had
// acknowledged on either socket where it can tell (Linux), and the bytes
// copied — every idle/idleChecksPerTimeout, and aborts the connection once
// the reading has not changed for idle. Reading kernel counters keeps the
// copy a plain splice, with no per-read deadline to refresh, and still
// sees a trickle that would not fill a chunk.
func (c *tcpConn) startIdleWatch(idle time.Duration) {
	if idle <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// No first reading: it would cost two getsockopt(2) calls on every
	// connection, most of which end long before the first tick. The
	// first tick sees a change and starts the count from there, so a
	// connection idle from the start still closes within a quarter
	// timeout after IdleTimeout.
	c.idle = idleWatch{timeout: idle, activity: notRead, lastChange: time.Now()}
	c.idle.timer = time.AfterFunc(c.idlePeriod(), c.checkIdle)
}

func (c *tcpConn) idlePeriod() time.Duration {
	return max(c.idle.timeout/idleChecksPerTimeout, time.Millisecond)
}

// checkIdle is the watchdog's tick.
func (c *tcpConn) checkIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished || c.aborted {
		return
	}
	now := time.Now()
	if a := c.activityLocked(); a != c.idle.activity {
		c.idle.activity, c.idle.lastChange = a, now
	} else if now.Sub(c.idle.lastChange) >= c.idle.timeout {
		c.idle.expired = true
		c.abortLocked()
		return
	}
	c.idle.timer.Reset(c.idlePeriod())
}

// activityLocked returns a number that changes whenever bytes move on the
// connection. Call with mu held.
func (c *tcpConn) activityLocked() uint64 {
	return c.in.Load() + c.out.Load() + socketActivity(c.client) + socketActivity(c.upstream)
}

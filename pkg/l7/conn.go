package l7

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/limit"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// conn is one downstream HTTP/1.x connection and the request state it
// reuses for every request it carries.
type conn struct {
	srv *Server
	c   net.Conn
	// pp says whose PROXY protocol headers the connection's listener
	// believes; nil: none.
	pp *proxyproto.Policy
	// gate, when not nil, is the listener's connection limit, of which
	// the connection holds a slot until forget.
	gate *limit.Gate
	r    *h1.Reader // &reader, set once the connection is ready for HTTP
	// reader is allocated with the connection rather than on its own.
	reader h1.Reader
	// w buffers responses. It comes from writerPool while a request is
	// being served and goes back when the connection turns idle, so an
	// idle connection holds no write buffer.
	w *bufio.Writer
	// io reads and writes c for src and wdst.
	io rawIO
	// dl sets c's deadlines for src, wdst and request bodies.
	dl deadlines
	// src is r's source and wdst w's destination: they apply the read and
	// write deadlines right before the system calls that need them.
	src    readSource
	wdst   writeDest
	remote netip.AddrPort
	tls    *tls.ConnectionState
	// ann owns the upstream connections that announce this connection's
	// client (PROXY protocol); announced says a request or serveH2 took
	// it (announcer), and finish must release them.
	ann       announcer
	announced bool
	// counted says the connection holds a count of its client's
	// (ClientLimits.Conns), which finish gives back.
	counted bool
	// idle is true while waiting for a request: Shutdown may close it.
	idle atomic.Bool
	// idleUntil is when waiting for the next request ends.
	idleUntil time.Time
	// closeAfter asks that the connection close after this response.
	closeAfter bool
	// lingering asks close to drain input first.
	lingering bool

	// px is the request being served. Like w it comes from a pool while a
	// request is in flight, so an idle connection holds no request state.
	px *request
}

var _ downstream = (*conn)(nil)

var (
	writerPool  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}
	copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	// requestPool holds the per-request state of HTTP/1.1 connections,
	// with the header and scratch buffers it grew.
	requestPool = sync.Pool{New: func() any { return new(request) }}
)

// h2Preface starts every HTTP/2 connection (RFC 9113 §3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

func (c *conn) serve() {
	if pp := c.pp; pp != nil && pp.Trusts(c.remote.Addr()) && !c.readProxyHeader(pp) {
		c.finish()
		return
	}
	if !c.acquireConn() {
		c.finish()
		return
	}
	if tc, ok := c.c.(*tls.Conn); ok {
		if !c.handshake(tc) {
			c.finish()
			return
		}
	}
	c.io.init(c.c)
	if c.tls == nil {
		// As for an upstream's answer (see exchange): a client's first
		// request is rarely there the moment its connection is accepted.
		runtime.Gosched()
	}
	c.dl = deadlines{conn: c.c}
	c.src = readSource{dl: &c.dl, io: &c.io}
	c.wdst = writeDest{dl: &c.dl, io: &c.io, timeout: c.srv.WriteTimeout}
	c.r = &c.reader
	c.reader.Reset(&c.src)
	switch {
	case c.tls != nil && c.tls.NegotiatedProtocol == "h2":
		c.srv.serveH2(c)
	case c.isH2C():
		c.srv.serveH2(c)
	default:
		c.serveRequests()
		return
	}
	c.finish()
}

// serveRequests serves HTTP/1.x requests until the connection ends, or
// until it goes quiet: it then waits in the server's quietSet, holding no
// goroutine (or, where that is unavailable, on a fresh goroutine, whose
// stack starts small), and this goroutine ends. So thousands of idle
// keep-alive connections cost little memory.
func (c *conn) serveRequests() {
	for {
		switch c.next() {
		case nextRequest:
		case quiet:
			if !c.srv.quiet.add(c) {
				go c.waitQuiet()
			}
			return // c may already be served elsewhere
		default:
			c.finish()
			return
		}
	}
}

// waitQuiet waits for the next request of a quiet connection on a
// goroutine of its own, holding no buffer, and serves on when it comes:
// the fallback for a connection the quiet set could not take.
func (c *conn) waitQuiet() {
	c.setIdleDeadline()
	if err := waitReadable(c.c); err != nil {
		c.timeOut()
		return
	}
	c.serveRequests()
}

// timeOut ends a quiet connection whose idle deadline passed. A request
// racing with the close must meet a FIN, not a reset.
func (c *conn) timeOut() {
	c.lingering = true
	c.finish()
}

// finish ends the connection: buffers back to their pools, the socket
// closed, the server told.
func (c *conn) finish() {
	if c.r != nil {
		c.r.Release()
	}
	c.end()
	c.close()
	c.releaseConn()
	if c.announced {
		c.srv.Pool.release(&c.ann)
	}
	c.srv.forget(c)
}

// isH2C reports whether a plain connection opens with the HTTP/2 preface
// (prior-knowledge h2c).
func (c *conn) isH2C() bool {
	if c.tls != nil {
		return false
	}
	c.src.expect(time.Now().Add(c.srv.IdleTimeout), 0)
	ok, err := c.r.HasPrefix(h2Preface)
	return err == nil && ok
}

// begin gives the connection a write buffer and request state for the
// request about to be served.
func (c *conn) begin() {
	if c.w == nil {
		c.w = writerPool.Get().(*bufio.Writer)
		c.w.Reset(&c.wdst)
	}
	if c.px == nil {
		c.px = requestPool.Get().(*request)
		c.px.srv, c.px.down, c.px.https = c.srv, c, c.tls != nil
	}
}

// end returns the write buffer, which every response flushed, and the
// request state to their pools once a request is done.
func (c *conn) end() {
	if c.w != nil {
		c.w.Reset(nil)
		writerPool.Put(c.w)
		c.w = nil
	}
	if c.px != nil {
		c.px.srv, c.px.down, c.px.sess.Ctx = nil, nil, nil
		requestPool.Put(c.px)
		c.px = nil
	}
}

func (c *conn) handshake(tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.HeaderTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.srv.Logger.Debug("tls handshake failed", "service", c.srv.Name, "client", c.remote, "err", err)
		if o := c.srv.Observer; o != nil {
			o.Handshake(nil, err)
		}
		return false
	}
	st := tc.ConnectionState()
	c.tls = &st
	if o := c.srv.Observer; o != nil {
		o.Handshake(c.tls, nil)
	}
	return true
}

// nextStep is what a connection does after a request: serve the next,
// wait for it holding no buffer, or close.
type nextStep uint8

const (
	closeConn nextStep = iota
	nextRequest
	quiet
)

// next serves one request and reports whether the connection may carry
// another, and whether it went quiet waiting for it.
func (c *conn) next() nextStep {
	s := c.srv
	c.idle.Store(true)
	if err := c.waitRequest(); err != nil {
		if err == errQuiet {
			return quiet
		}
		// Idle timeout, client gone, or Shutdown's grace over. A request
		// racing with this close must meet a FIN, not a reset, so that the
		// client can tell it was not processed and retry it.
		c.lingering = true
		return closeConn
	}
	c.idle.Store(false)
	c.closeAfter = s.closing.Load()
	c.begin()
	defer c.end()
	// The head is bounded by HeaderTimeout from its first byte, which has
	// arrived; the deadline is only set if the head needs another read.
	c.src.headerDue(s.HeaderTimeout)
	px := c.px
	err := c.r.ReadRequest(&px.req, s.Limits)
	c.src.headerDone()
	if err != nil {
		c.rejectRequest(err)
		return closeConn
	}
	if !px.req.KeepAlive {
		c.closeAfter = true
	}
	px.bodyDone = false
	proto := HTTP11
	if px.req.Minor == 0 {
		proto = HTTP10
	}
	px.sess.reset(px, proto, c.remote, c.tls)
	if err := px.serve(); err != nil {
		if px.sess.Status != 0 {
			// Cut short after its head: what had arrived of the response
			// still goes out before the close tells the client the rest
			// never will.
			c.w.Flush()
		}
		c.lingering = !px.bodyDone && (px.req.ContentLength > 0 || px.req.Chunked)
		return closeConn
	}
	if c.finishRequestBody() && !c.closeAfter {
		return nextRequest
	}
	return closeConn
}

// shedAfter is how long a keep-alive connection waits for its next
// request before giving its read buffer back to the pool and waiting on
// without one. A busy client's next request comes well within it, so the
// hot path never pays for the switch; an idle one then costs no buffer.
const shedAfter = 100 * time.Millisecond

// errQuiet is waitRequest's signal that the connection went quiet.
var errQuiet = errors.New("l7: connection quiet")

// waitRequest waits, up to the idle deadline, for the first byte of the
// next request. A connection that stays quiet for shedAfter sheds its read
// buffer and returns errQuiet, to wait on for readability without a buffer
// (where the platform allows it: plain TCP on Linux).
func (c *conn) waitRequest() error {
	now := time.Now()
	var timeout time.Duration // the idle deadline is exact while draining
	c.idleUntil, timeout = c.srv.idleDeadline(now), c.srv.IdleTimeout
	if c.srv.closing.Load() {
		timeout = 0
	}
	if c.tls != nil || c.idleUntil.Sub(now) <= 2*shedAfter || !canWaitReadable(c.c) {
		c.src.expect(c.idleUntil, timeout)
		return c.r.Wait()
	}
	c.src.expect(now.Add(shedAfter), shedAfter)
	err := c.r.Wait()
	if err == nil || !isTimeout(err) || c.srv.closing.Load() {
		return err
	}
	c.r.Shed() // nothing arrived: the whole buffer is free
	return errQuiet
}

// setIdleDeadline makes a quiet connection's wait end at the idle
// deadline waitRequest chose.
func (c *conn) setIdleDeadline() { c.dl.setRead(c.idleUntil, 0) }

// rejectRequest answers a malformed request head with its status and
// closes: after a framing error the stream cannot be trusted.
func (c *conn) rejectRequest(err error) {
	if errors.Is(err, h1.ErrBodyUnread) {
		// Our bookkeeping failed, not the client: close, don't blame it.
		c.srv.Logger.Error("connection closed with a request body unread", "service", c.srv.Name, "client", c.remote)
		return
	}
	var he *h1.Error
	if !errors.As(err, &he) {
		return // timeout or EOF mid-head: nothing sensible to answer
	}
	c.closeAfter = true
	c.lingering = true
	c.px.req.Method = nil // no HEAD semantics for a request we could not read
	s := &c.px.sess
	s.reset(c.px, HTTP11, c.remote, c.tls)
	obs := c.srv.Observer
	if obs != nil {
		obs.RequestStarted(s)
	}
	if he.Status == 431 {
		c.srv.ClientLimits.count(LimitHeader)
	}
	c.px.writeError(he.Status)
	if obs != nil {
		// Counted and logged as the client's 4xx it is.
		s.End = time.Now()
		obs.RequestDone(s, fmt.Errorf("%w: %w", ErrDownstream, err))
	}
	c.srv.Logger.Debug("bad request", "service", c.srv.Name, "client", c.remote, "status", he.Status, "err", err)
}

// close closes the connection. When the client may still be sending (an
// error answered before its request was read to the end), it first stops
// writing and reads for a moment: closing a socket with unread input
// sends a reset, which can destroy the answer before the client reads it.
func (c *conn) close() {
	if c.lingering {
		lingerClose(c.c)
	}
	c.c.Close()
}

// lingerTime and lingerBytes bound how long and how much a closing
// connection drains.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 1 << 20
)

// lingerClose ends the sending side of nc after its last bytes (a final
// response, a GOAWAY) and reads what the client still sends, until it
// closes too or a bound is met; the caller then closes nc. Closing a
// socket that has unread bytes makes the kernel send a reset instead,
// which may destroy those last bytes before the client read them.
func lingerClose(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		if tc.CloseWrite() != nil { // close_notify
			return
		}
		nc = tc.NetConn() // the rest is discarded undecrypted
	}
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	nc.SetReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, nc, lingerBytes)
}

// finishRequestBody makes sure the request body was consumed before the
// next request is read: a proxy that answered without reading it drains a
// small one, and gives up the connection rather than read a large one.
func (c *conn) finishRequestBody() bool {
	req := &c.px.req
	if c.px.bodyDone || (!req.Chunked && req.ContentLength <= 0) {
		return true
	}
	const maxDrain = 256 << 10
	if !req.Chunked && req.ContentLength > maxDrain {
		c.lingering = true
		return false
	}
	body := c.requestBody()
	c.px.downIn.timeout = time.Second
	n, err := io.Copy(io.Discard, io.LimitReader(body, maxDrain+1))
	if err != nil || n > maxDrain {
		c.lingering = true
		return false
	}
	return true
}

// continue100 implements downstream.
func (c *conn) continue100() error {
	c.w.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return c.w.Flush()
}

// interim implements downstream: 1xx heads reach HTTP/1.1 clients only.
func (c *conn) interim(status int, reason []byte, h *h1.Header) error {
	if c.px.req.Minor != 1 {
		return nil
	}
	buf := appendStatusLine(c.px.scratch[:0], status, reason)
	buf = appendFields(buf, h)
	buf = append(buf, "\r\n"...)
	c.px.scratch = buf[:0]
	c.w.Write(buf)
	return c.w.Flush()
}

// writeHead implements downstream. A body of unknown length reaches an
// HTTP/1.1 client chunked; an HTTP/1.0 client learns its end when the
// connection closes.
func (c *conn) writeHead(status int, reason []byte, h *h1.Header, length int64, noBody bool) error {
	if c.srv.closing.Load() || c.px.failed {
		c.closeAfter = true
	}
	c.px.chunkOut = !noBody && length < 0 && c.px.req.Minor == 1
	if !noBody && length < 0 && !c.px.chunkOut {
		c.closeAfter = true
	}
	buf := appendStatusLine(c.px.scratch[:0], status, reason)
	if h != nil {
		buf = appendFields(buf, h)
	}
	if id := c.px.sess.RequestID; len(id) > 0 && !setByFilter(h) {
		buf = append(append(append(buf, RequestIDHeader+": "...), id...), "\r\n"...)
	}
	switch {
	case c.px.chunkOut:
		buf = append(buf, "Transfer-Encoding: chunked\r\n"...)
	case length >= 0 && status != 204 && status != 304:
		buf = append(buf, "Content-Length: "...)
		buf = strconv.AppendInt(buf, length, 10)
		buf = append(buf, "\r\n"...)
	}
	switch {
	case c.closeAfter:
		buf = append(buf, "Connection: close\r\n"...)
	case c.px.req.Minor == 0:
		buf = append(buf, "Connection: keep-alive\r\n"...)
	}
	buf = append(buf, "\r\n"...)
	c.px.scratch = buf[:0]
	dst := io.Writer(c.w)
	if c.px.chunkOut {
		c.px.downChunked.Reset(c.w)
		dst = &c.px.downChunked
	}
	// No deadline here: c.w's destination sets one before every write.
	c.px.downOut = deadlineWriter{w: dst, flush: c.w}
	if c.closeAfter && (noBody || length >= 0 && length <= smallBody) {
		// The last response, small and of known length: it is buffered
		// whole, to leave with the FIN in one segment (see endBody).
		c.px.downOut.flush = nil
	}
	_, err := c.w.Write(buf)
	return err
}

// body implements downstream.
func (c *conn) body() io.Writer { return &c.px.downOut }

// held implements downstream: the write buffer, which a small last
// response stays in until it ends (see writeHead).
func (c *conn) held() *bufio.Writer { return c.w }

// endBody implements downstream. The last response of a connection that
// closes after it leaves with the FIN (rawIO.lastWrite).
func (c *conn) endBody(trailer *h1.Header) error {
	if c.px.chunkOut {
		if err := c.px.downChunked.Close(trailer); err != nil {
			return err
		}
	}
	if c.closeAfter {
		return c.io.lastWrite(c.w.Flush)
	}
	return c.w.Flush()
}

// requestBody implements downstream.
func (c *conn) requestBody() io.Reader {
	req := &c.px.req
	var body io.Reader
	switch {
	case req.Chunked:
		c.px.reqTrailer.Reset()
		body = c.r.BodyChunked(&c.px.reqTrailer)
	case req.ContentLength > 0:
		body = c.r.BodyLength(req.ContentLength)
	default:
		return nil
	}
	c.px.downIn = deadlineReader{dl: &c.dl, r: body, timeout: c.srv.IdleTimeout}
	return &c.px.downIn
}

// tunnel implements downstream: it joins the client and the upstream after
// a 101 Switching Protocols (WebSocket and other upgrades) and copies both
// ways until both sides are done. The connection is not reused afterwards.
func (c *conn) tunnel(r *request, uc *upstreamConn) error {
	defer uc.close()
	c.closeAfter = true
	resp := &r.resp
	c.dl.setWrite(time.Now().Add(c.srv.WriteTimeout), 0)
	buf := appendStatusLine(r.scratch[:0], 101, resp.Reason)
	buf = appendFields(buf, &resp.Header)
	if up, ok := resp.Header.Get("Upgrade"); ok {
		buf = append(buf, "Connection: upgrade\r\nUpgrade: "...)
		buf = append(buf, up...)
		buf = append(buf, "\r\n"...)
	}
	buf = append(buf, "\r\n"...)
	r.scratch = buf[:0]
	r.sess.Status = 101
	c.w.Write(buf)
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrDownstream, err)
	}
	// From here on the tunnel's goroutines own the deadlines.
	c.dl.forget()
	c.c.SetDeadline(time.Time{})
	uc.conn.SetDeadline(time.Time{})
	probeIdlePeer(c.c)
	done := make(chan struct{}, 2)
	pipe := func(dst net.Conn, src io.Reader) {
		io.Copy(dst, src)
		closeWrite(dst)
		done <- struct{}{}
	}
	go pipe(uc.conn, c.r)
	go pipe(c.c, uc.r)
	<-done
	// One side finished: give the other a bounded time to finish too.
	limit := time.Now().Add(c.srv.IdleTimeout)
	c.c.SetReadDeadline(limit)
	uc.conn.SetReadDeadline(limit)
	<-done
	return nil
}

// probeIdlePeer turns TCP keep-alive probes on for a client connection
// that became a tunnel: no timeout bounds a tunnel, which may rightly stay
// silent for hours, and the listener may have left probes off (they cost
// system calls on every accepted connection). A client that vanished
// without a FIN then fails its probes and the tunnel ends.
func probeIdlePeer(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9})
	}
}

// appendStatusLine appends an HTTP/1.1 status line, with the standard
// reason when the upstream gave none (HTTP/2 has none to give).
func appendStatusLine(dst []byte, status int, reason []byte) []byte {
	if len(reason) > 0 {
		return h1.AppendStatusLine(dst, 1, status, reason)
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, h1.StatusText(status)...)
	return append(dst, "\r\n"...)
}

// readSource is the source of a client connection's h1.Reader. It applies
// the read deadline the connection expects right before the next read
// that reaches the socket, so that a request whose head arrives in one
// read (nearly all) costs one deadline, not three. Code that reads the
// connection past the Reader sets its deadlines on the connection itself.
type readSource struct {
	dl *deadlines
	io *rawIO
	// deadline is applied before the next read when pending is set;
	// timeout is what it was computed from (0: exact), as in
	// deadlines.setRead.
	deadline time.Time
	timeout  time.Duration
	pending  bool
	// headTimeout, when not 0, becomes the deadline (counted from then)
	// if reading a head needs another read.
	headTimeout time.Duration
}

// expect makes the next read wait until t at most; t was computed from
// timeout, as in deadlines.setRead.
func (s *readSource) expect(t time.Time, timeout time.Duration) {
	s.deadline, s.timeout, s.pending, s.headTimeout = t, timeout, true, 0
}

// headerDue bounds the rest of the head being read by d, should it need
// another read.
func (s *readSource) headerDue(d time.Duration) { s.headTimeout = d }

// headerDone ends the head's bound and drops a deadline not yet applied
// (the head was already buffered): body reads set their own deadlines.
func (s *readSource) headerDone() { s.headTimeout, s.pending = 0, false }

func (s *readSource) Read(p []byte) (int, error) {
	if s.headTimeout > 0 {
		s.expect(time.Now().Add(s.headTimeout), s.headTimeout)
	}
	if s.pending {
		s.dl.setRead(s.deadline, s.timeout)
		s.pending = false
	}
	return s.io.Read(p)
}

// writeDest is the destination of a client connection's write buffer: it
// sets the write deadline before every write that reaches the socket, so
// each write is bounded and a response that leaves in one write costs one
// deadline.
type writeDest struct {
	dl      *deadlines
	io      *rawIO
	timeout time.Duration
}

func (d *writeDest) Write(p []byte) (int, error) {
	d.dl.setWrite(time.Now().Add(d.timeout), d.timeout)
	return d.io.Write(p)
}

// closeWrite half-closes dst so the other side sees EOF, where possible.
func closeWrite(dst net.Conn) {
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	dst.Close()
}

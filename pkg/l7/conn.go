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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
)

// conn is one downstream HTTP/1.x connection and the request state it
// reuses for every request it carries.
type conn struct {
	srv    *Server
	c      net.Conn
	r      *h1.Reader
	w      *bufio.Writer
	remote netip.AddrPort
	tls    *tls.ConnectionState
	// idle is true while waiting for a request: Shutdown may close it.
	idle atomic.Bool
	// closeAfter asks that the connection close after this response.
	closeAfter bool
	// lingering asks close to drain input first.
	lingering bool

	px request
	// Response framing chosen by writeHead.
	chunkOut bool
	chunked  h1.ChunkedWriter
	out      deadlineWriter
	in       deadlineReader
}

var _ downstream = (*conn)(nil)

var (
	writerPool  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}
	copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

// h2Preface starts every HTTP/2 connection (RFC 9113 §3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

func (c *conn) serve() {
	defer c.srv.forget(c)
	defer c.close()
	if tc, ok := c.c.(*tls.Conn); ok {
		if !c.handshake(tc) {
			return
		}
	}
	c.r = h1.NewReader(c.c)
	c.w = writerPool.Get().(*bufio.Writer)
	c.w.Reset(c.c)
	defer func() {
		c.r.Release()
		c.w.Reset(nil)
		writerPool.Put(c.w)
	}()
	if c.tls != nil && c.tls.NegotiatedProtocol == "h2" {
		c.srv.serveH2(c, c.c)
		return
	}
	if c.isH2C() {
		c.srv.serveH2(c, &prefacedConn{Conn: c.c, r: c.r})
		return
	}
	c.px = request{srv: c.srv, down: c, https: c.tls != nil}
	for c.next() {
	}
}

// isH2C reports whether a plain connection opens with the HTTP/2 preface
// (prior-knowledge h2c).
func (c *conn) isH2C() bool {
	if c.tls != nil {
		return false
	}
	c.c.SetReadDeadline(time.Now().Add(c.srv.IdleTimeout))
	ok, err := c.r.HasPrefix(h2Preface)
	c.c.SetReadDeadline(time.Time{})
	return err == nil && ok
}

// prefacedConn replays the bytes an h1.Reader already buffered before
// reading on from the connection.
type prefacedConn struct {
	net.Conn
	r *h1.Reader
}

func (p *prefacedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

func (c *conn) handshake(tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.HeaderTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.srv.Logger.Debug("tls handshake failed", "service", c.srv.Name, "client", c.remote, "err", err)
		return false
	}
	st := tc.ConnectionState()
	c.tls = &st
	return true
}

// next serves one request and reports whether the connection may carry
// another.
func (c *conn) next() bool {
	s := c.srv
	c.idle.Store(true)
	c.c.SetReadDeadline(s.idleDeadline())
	if err := c.r.Wait(); err != nil {
		// Idle timeout, client gone, or Shutdown's grace over. A request
		// racing with this close must meet a FIN, not a reset, so that the
		// client can tell it was not processed and retry it.
		c.lingering = true
		return false
	}
	c.idle.Store(false)
	c.closeAfter = s.closing.Load()
	c.c.SetReadDeadline(time.Now().Add(s.HeaderTimeout))
	px := &c.px
	if err := c.r.ReadRequest(&px.req, s.Limits); err != nil {
		c.rejectRequest(err)
		return false
	}
	c.c.SetReadDeadline(time.Time{})
	if !px.req.KeepAlive {
		c.closeAfter = true
	}
	px.bodyDone = false
	px.sess.reset(px, c.remote, c.tls)
	if err := px.serve(); err != nil {
		c.lingering = !px.bodyDone && (px.req.ContentLength > 0 || px.req.Chunked)
		return false
	}
	return c.finishRequestBody() && !c.closeAfter
}

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
	c.px.writeError(he.Status)
	c.srv.Logger.Debug("bad request", "service", c.srv.Name, "client", c.remote, "status", he.Status, "err", err)
}

// close closes the connection. When the client may still be sending (an
// error answered before its request was read to the end), it first stops
// writing and reads for a moment: closing a socket with unread input
// sends a reset, which can destroy the answer before the client reads it.
func (c *conn) close() {
	if c.lingering {
		if cw, ok := c.c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			c.c.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, c.c, lingerBytes)
		}
	}
	c.c.Close()
}

// lingerTime and lingerBytes bound how long and how much a closing
// connection drains.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 1 << 20
)

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
	c.c.SetReadDeadline(time.Now().Add(time.Second))
	defer c.c.SetReadDeadline(time.Time{})
	n, err := io.Copy(io.Discard, io.LimitReader(c.requestBody(), maxDrain+1))
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
	c.c.SetWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
	if c.srv.closing.Load() {
		c.closeAfter = true
	}
	c.chunkOut = !noBody && length < 0 && c.px.req.Minor == 1
	if !noBody && length < 0 && !c.chunkOut {
		c.closeAfter = true
	}
	buf := appendStatusLine(c.px.scratch[:0], status, reason)
	if h != nil {
		buf = appendFields(buf, h)
	}
	switch {
	case c.chunkOut:
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
	if c.chunkOut {
		c.chunked.Reset(c.w)
		dst = &c.chunked
	}
	c.out = deadlineWriter{conn: c.c, w: dst, flush: c.w, timeout: c.srv.WriteTimeout}
	_, err := c.w.Write(buf)
	return err
}

// body implements downstream.
func (c *conn) body() io.Writer { return &c.out }

// endBody implements downstream.
func (c *conn) endBody(trailer *h1.Header) error {
	if c.chunkOut {
		if err := c.chunked.Close(trailer); err != nil {
			return err
		}
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
	c.in = deadlineReader{c.c, body, c.srv.IdleTimeout}
	return &c.in
}

// tunnel implements downstream: it joins the client and the upstream after
// a 101 Switching Protocols (WebSocket and other upgrades) and copies both
// ways until both sides are done. The connection is not reused afterwards.
func (c *conn) tunnel(r *request, uc *upstreamConn) error {
	defer uc.close()
	c.closeAfter = true
	resp := &r.resp
	c.c.SetWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
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
	c.c.SetDeadline(time.Time{})
	uc.conn.SetDeadline(time.Time{})
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

// closeWrite half-closes dst so the other side sees EOF, where possible.
func closeWrite(dst net.Conn) {
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	dst.Close()
}

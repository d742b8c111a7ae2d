package l7

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"golang.org/x/net/http2"
)

// HTTP/2 is served by golang.org/x/net/http2, both downstream (ALPN "h2"
// over TLS, or the prior-knowledge preface on a plain connection) and
// upstream (a multiplexed connection per peer key). Only the framing
// differs from HTTP/1.1: every request runs the same pipeline (request.go)
// with an h2stream as its downstream.

// initH2 prepares the HTTP/2 server. The base http.Server serves nothing
// itself; it exists so that Shutdown can send GOAWAY to every HTTP/2
// connection through the hook http2.ConfigureServer registers on it.
func (s *Server) initH2() {
	s.h2 = &http2.Server{IdleTimeout: s.IdleTimeout}
	s.h2base = &http.Server{ReadHeaderTimeout: s.HeaderTimeout, IdleTimeout: s.IdleTimeout}
	http2.ConfigureServer(s.h2base, s.h2)
}

// serveH2 serves an HTTP/2 connection until it ends. nc reads the bytes c
// has already buffered first.
func (s *Server) serveH2(c *conn, nc net.Conn) {
	c.idle.Store(false) // Shutdown ends it with GOAWAY, not by closing it
	c.c.SetDeadline(time.Time{})
	s.h2.ServeConn(nc, &http2.ServeConnOpts{
		BaseConfig: s.h2base,
		Handler:    http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) { s.serveH2Stream(c, w, hr) }),
	})
}

// h2stream is one HTTP/2 request's downstream.
type h2stream struct {
	px        request
	w         http.ResponseWriter
	rc        *http.ResponseController
	hr        *http.Request
	in        h2Body
	out       h2Writer
	wroteHead bool
}

var _ downstream = (*h2stream)(nil)

var h2streamPool = sync.Pool{New: func() any { return new(h2stream) }}

func (s *Server) serveH2Stream(c *conn, w http.ResponseWriter, hr *http.Request) {
	st := h2streamPool.Get().(*h2stream)
	st.w, st.hr, st.rc, st.wroteHead = w, hr, http.NewResponseController(w), false
	st.out = h2Writer{w: w, rc: st.rc}
	st.px.srv, st.px.down, st.px.https, st.px.bodyDone = s, st, c.tls != nil, false
	st.fillRequest()
	st.px.sess.reset(&st.px, c.remote, c.tls)
	err := st.px.serve()
	wrote := st.wroteHead
	st.w, st.hr, st.rc, st.out, st.in = nil, nil, nil, h2Writer{}, h2Body{}
	h2streamPool.Put(st)
	if err != nil && wrote {
		// The head is out: reset the stream so the client cannot take a
		// truncated body for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// fillRequest turns the HTTP/2 request into the pipeline's request head.
func (st *h2stream) fillRequest() {
	hr, req := st.hr, &st.px.req
	req.Header.Reset()
	req.Method = append(req.Method[:0], hr.Method...)
	req.Target = append(req.Target[:0], hr.RequestURI...)
	req.Minor = 1
	req.Host = append(req.Host[:0], hr.Host...)
	req.Header.Add("Host", hr.Host)
	for name, values := range hr.Header {
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	req.ContentLength, req.Chunked = hr.ContentLength, false
	if hr.Body == nil || hr.Body == http.NoBody {
		req.ContentLength = 0
	} else if hr.ContentLength < 0 {
		req.Chunked = true
	}
	req.KeepAlive, req.Upgrade, req.Expect100 = true, nil, false
}

// continue100 implements downstream: the HTTP/2 server sends 100 itself
// when the body is first read.
func (st *h2stream) continue100() error { return nil }

// interim implements downstream. Interim responses are not relayed to
// HTTP/2 clients: the final head follows.
func (st *h2stream) interim(int, []byte, *h1.Header) error { return nil }

// writeHead implements downstream.
func (st *h2stream) writeHead(status int, _ []byte, h *h1.Header, length int64, noBody bool) error {
	hdr := st.w.Header()
	if h != nil {
		for i := 0; i < h.Len(); i++ {
			name, value := h.At(i)
			if h1.IsHopByHop(name) || asciiEqualFold(name, "Content-Length") {
				continue
			}
			hdr.Add(string(name), string(value))
		}
	}
	if length >= 0 && status != 204 && status != 304 {
		hdr.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	st.out.left = -1
	if length >= 0 && !noBody {
		st.out.left = length
	}
	st.w.WriteHeader(status)
	st.wroteHead = true
	return nil
}

// body implements downstream.
func (st *h2stream) body() io.Writer { return &st.out }

// endBody implements downstream; trailer fields become HTTP/2 trailers.
func (st *h2stream) endBody(trailer *h1.Header) error {
	if trailer == nil {
		return nil
	}
	hdr := st.w.Header()
	for i := 0; i < trailer.Len(); i++ {
		name, value := trailer.At(i)
		hdr.Add(http.TrailerPrefix+string(name), string(value))
	}
	return nil
}

// requestBody implements downstream.
func (st *h2stream) requestBody() io.Reader {
	if st.px.req.ContentLength == 0 {
		return nil
	}
	st.in = h2Body{st: st}
	return &st.in
}

// tunnel implements downstream: an HTTP/2 client cannot be switched to
// another protocol.
func (st *h2stream) tunnel(r *request, uc *upstreamConn) error {
	uc.close()
	return fmt.Errorf("%w: %s answered 101 to a request from an HTTP/2 client", ErrUpstreamProtocol, uc.key.addr)
}

// h2Body reads the request body and, at its end, copies the request's
// trailers for the upstream.
type h2Body struct{ st *h2stream }

func (b *h2Body) Read(p []byte) (int, error) {
	n, err := b.st.hr.Body.Read(p)
	if err == io.EOF {
		tr := &b.st.px.reqTrailer
		tr.Reset()
		for name, values := range b.st.hr.Trailer {
			for _, v := range values {
				tr.Add(name, v)
			}
		}
	}
	return n, err
}

// h2Writer writes the response body and flushes every write, so the body
// is relayed as it arrives; except the write that completes a body of
// known length: the end of the stream follows at once and is sent with
// it, so that many small responses on one connection share writes.
type h2Writer struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	// left is how much of a body of known length is still to come; -1
	// when the length is unknown.
	left int64
}

func (h *h2Writer) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	if h.left >= 0 {
		h.left -= int64(n)
	}
	if err == nil && h.left != 0 {
		err = h.rc.Flush()
	}
	return n, err
}

// exchangeH2 sends the request on the multiplexed HTTP/2 connection cc
// and relays the response.
func (r *request) exchangeH2(cc *http2.ClientConn, peer *Peer) error {
	t := peer.Timeouts.withDefaults()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// The read timeout bounds the wait for the head and each wait for
	// body bytes after it: a timer re-armed by every read.
	timer := time.AfterFunc(t.Read, func() { cancel(ErrUpstreamTimeout) })
	defer timer.Stop()

	hreq, body, err := r.h2Request(ctx, peer)
	if err != nil {
		return err
	}
	if body != nil {
		// The transport reads the body on a goroutine of its own, which
		// may outlive RoundTrip. Before the downstream connection moves
		// on, end the stream and wait for the transport to let go.
		defer func() {
			cancel(nil)
			select {
			case <-body.closed:
			case <-time.After(t.Write):
			}
			r.bodyDone = body.eof.Load()
		}()
	}
	retryable := r.req.ContentLength <= 0 && !r.req.Chunked && idempotent(r.req.Method)
	resp, err := cc.RoundTrip(hreq)
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrUpstreamTimeout) {
			return fmt.Errorf("%w: %s: %w", ErrUpstreamTimeout, peer.Addr, err)
		}
		if !cc.CanTakeNewRequest() && retryable {
			return &staleConnError{err}
		}
		return fmt.Errorf("%w: %s: %w", ErrUpstreamProtocol, peer.Addr, err)
	}
	defer resp.Body.Close()
	timer.Reset(t.Read)

	rs := &r.resp
	rs.Header.Reset()
	for name, values := range resp.Header {
		for _, v := range values {
			rs.Header.Add(name, v)
		}
	}
	rs.Status, rs.Reason, rs.Minor = resp.StatusCode, nil, 1
	rs.ContentLength, rs.Chunked, rs.KeepAlive = resp.ContentLength, false, true
	if f, ok := r.srv.Proxy.(ResponseFilter); ok {
		if err := f.ResponseFilter(&r.sess, rs); err != nil {
			return fmt.Errorf("response filter: %w", err)
		}
	}
	noBody := r.noBody(rs.Status)
	r.sess.Status = rs.Status
	if err := r.down.writeHead(rs.Status, nil, &rs.Header, rs.ContentLength, noBody); err != nil {
		return fmt.Errorf("%w: %w", ErrDownstream, err)
	}
	if noBody {
		return r.endBody(nil)
	}
	n, rerr, werr := copyBody(r.down.body(), &timedReader{r: resp.Body, timer: timer, d: t.Read}, r.copyBuffer(rs.ContentLength))
	r.sess.BytesSent += n
	if werr != nil {
		return fmt.Errorf("%w: %w", ErrDownstream, werr)
	}
	if rerr != nil {
		if errors.Is(context.Cause(ctx), ErrUpstreamTimeout) {
			return fmt.Errorf("%w: %s: %w", ErrUpstreamTimeout, peer.Addr, rerr)
		}
		return fmt.Errorf("%w: %s: %w", ErrUpstreamProtocol, peer.Addr, rerr)
	}
	var tr *h1.Header
	if len(resp.Trailer) > 0 {
		r.respTrailer.Reset()
		for name, values := range resp.Trailer {
			for _, v := range values {
				r.respTrailer.Add(name, v)
			}
		}
		tr = &r.respTrailer
	}
	return r.endBody(tr)
}

// h2Request builds the upstream HTTP/2 request from the request head,
// and returns its body (nil when it has none).
func (r *request) h2Request(ctx context.Context, peer *Peer) (*http.Request, *h2ReqBody, error) {
	req := &r.req
	host := string(req.Host)
	if h, ok := req.Header.Get("Host"); ok {
		host = string(h)
	}
	scheme := "http://"
	if peer.TLS {
		scheme = "https://"
	}
	hreq, err := http.NewRequestWithContext(ctx, string(req.Method), scheme+host+string(req.Target), http.NoBody)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: request for %s: %w", ErrUpstreamProtocol, peer.Addr, err)
	}
	hreq.Host = host
	var body *h2ReqBody
	if b := r.down.requestBody(); b != nil {
		body = &h2ReqBody{r: b, closed: make(chan struct{})}
		hreq.Body, hreq.ContentLength = body, req.ContentLength
		if req.Chunked {
			hreq.ContentLength = -1
		}
	}
	for i := 0; i < req.Header.Len(); i++ {
		name, value := req.Header.At(i)
		if h1.IsHopByHop(name) || asciiEqualFold(name, "Content-Length") || asciiEqualFold(name, "Host") {
			continue
		}
		hreq.Header.Add(string(name), string(value))
	}
	return hreq, body, nil
}

// h2ReqBody is a request body handed to the HTTP/2 transport. It records
// whether it was read to the end and when the transport closed it.
type h2ReqBody struct {
	r      io.Reader
	eof    atomic.Bool
	once   sync.Once
	closed chan struct{}
}

func (b *h2ReqBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *h2ReqBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// timedReader re-arms timer before every read.
type timedReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (t *timedReader) Read(p []byte) (int, error) {
	t.timer.Reset(t.d)
	return t.r.Read(p)
}

// getH2 returns a usable HTTP/2 connection for key, if the pool has one.
func (p *Pool) getH2(key poolKey) *http2.ClientConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cc := p.h2[key]
	if cc == nil {
		return nil
	}
	if !cc.CanTakeNewRequest() {
		delete(p.h2, key)
		go cc.Close()
		return nil
	}
	return cc
}

// addH2 turns the new connection uc into the HTTP/2 connection for key.
func (p *Pool) addH2(key poolKey, uc *upstreamConn) (*http2.ClientConn, error) {
	uc.r.Release()
	uc.w.Reset(nil)
	cc, err := p.h2t.NewClientConn(uc.conn)
	if err != nil {
		uc.conn.Close()
		return nil, err
	}
	p.mu.Lock()
	if old := p.h2[key]; old != nil && old.CanTakeNewRequest() {
		// Another request connected meanwhile: share its connection.
		p.mu.Unlock()
		cc.Close()
		return old, nil
	}
	if p.closed {
		p.mu.Unlock()
		cc.Close()
		return nil, errors.New("pool closed")
	}
	p.h2[key] = cc
	p.mu.Unlock()
	return cc, nil
}

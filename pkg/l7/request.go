package l7

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/retry"
)

// downstream is the client side of one request: an HTTP/1.1 connection
// or an HTTP/2 stream. The pipeline in this file speaks to either.
type downstream interface {
	// continue100 answers Expect: 100-continue where the protocol leaves
	// that to the proxy.
	continue100() error
	// interim relays a 1xx response head.
	interim(status int, reason []byte, h *h1.Header) error
	// writeHead sends the response head. length is the body's length, -1
	// when unknown; noBody says the response has none (HEAD, 204, 304).
	// Framing fields in h are ignored: the downstream sets its own.
	writeHead(status int, reason []byte, h *h1.Header, length int64, noBody bool) error
	// body is where the response body goes; each write reaches the
	// client at once.
	body() io.Writer
	// endBody ends the response body, with trailer fields when not nil.
	endBody(trailer *h1.Header) error
	// requestBody returns the request body, or nil when it has none.
	requestBody() io.Reader
	// tunnel joins the client to uc after a 101 Switching Protocols.
	tunnel(r *request, uc *upstreamConn) error
	// held returns the buffer in which the downstream may hold response
	// bytes back (to send a small last response with the FIN), nil when
	// every write reaches the client at once. The relay sends what it
	// holds before waiting for the upstream.
	held() *bufio.Writer
	// announcer returns the downstream connection, as the owner of the
	// upstream connections that announce its client (PROXY protocol).
	announcer() *announcer
}

// request is one request on its way through the proxy, with the buffers
// it reuses. An HTTP/1.1 connection keeps one for all its requests; an
// HTTP/2 stream takes one from a pool.
type request struct {
	srv  *Server
	down downstream
	sess Session
	req  h1.Request
	resp h1.Response
	// https says the client connection is TLS (X-Forwarded-Proto).
	https bool

	scratch     []byte
	upChunked   h1.ChunkedWriter // the request body towards the upstream
	reqTrailer  h1.Header
	respTrailer h1.Header
	dr          deadlineReader
	dw          deadlineWriter
	// The framing of an HTTP/1.1 client's response, chosen by its
	// writeHead, and the reader of its request body. They live here
	// rather than in the connection, which would carry them while idle.
	chunkOut    bool
	downChunked h1.ChunkedWriter
	downOut     deadlineWriter
	downIn      deadlineReader
	// encOut and encIn carry a body through a ResponseBodyFilter's
	// encoder (relayBody).
	encOut countWriter
	encIn  encodeWriter
	// bodyDone is set once the request body was read to its end.
	bodyDone bool
	// failed is set while the answer to a failed request is written.
	failed bool
	// upStatus is the status of the upstream's final response head in
	// the attempt under way, 0 until one arrived: what passive health
	// judges the backend by (report).
	upStatus int
	// abort, when not nil, lets the client's side end the upstream
	// exchange (an HTTP/2 stream's; nil for HTTP/1.1).
	abort *abort
	// small relays bodies that fit in it, sparing the pooled 32 KiB
	// buffer (and, with thousands of HTTP/2 streams in flight, the
	// allocation of new ones).
	small [smallBody]byte
	// bodyLimit bounds a request body of unknown length
	// (ClientLimits.MaxRequestBody).
	bodyLimit limitedBody
	// retry is the request's retry bookkeeping under a policy (retry.go).
	retry retryState
}

// smallBody is the largest body relayed through request.small.
const smallBody = 2 << 10

// copyBuffer returns the buffer for relaying a body of length bytes (-1:
// unknown): request.small when it fits, else nil for a pooled one.
func (r *request) copyBuffer(length int64) []byte {
	if length >= 0 && length <= smallBody {
		return r.small[:]
	}
	return nil
}

// serve runs the request through every phase and reports the error that
// ended it, after logging and answering it where a head can still be sent.
func (r *request) serve() error {
	s := &r.sess
	p := r.srv.Proxy
	s.MaxRetries = r.srv.MaxRetries
	s.NoForwardedHeaders = r.srv.NoForwardedHeaders
	s.MaxRequestBody = r.srv.ClientLimits.maxRequestBody()
	if r.srv.RequestID {
		s.assignRequestID()
	}
	obs := r.srv.Observer
	if obs != nil {
		obs.RequestStarted(s)
	}
	if m, ok := p.(CtxMaker); ok {
		s.Ctx = m.NewCtx()
	}
	err := r.run(s)
	s.freeSlot()
	if r.retry != (retryState{}) {
		r.finishRetry()
	}
	truncated := err != nil && s.Status != 0
	if truncated && s.GRPC {
		r.endGRPC(err)
	}
	if err != nil && s.Status == 0 {
		if status := statusFor(err); status != 0 {
			// A failed request ends its HTTP/1.1 connection: the answer
			// must say so, or the client's next request meets the close.
			r.failed = true
			r.writeError(status)
			r.failed = false
		}
	}
	if lg, ok := p.(Logger); ok {
		lg.Log(s, err)
	}
	if obs != nil {
		s.End = time.Now()
		obs.RequestDone(s, err)
	}
	if err != nil {
		r.logFailure(err, truncated)
	}
	return err
}

// logFailure logs the error that ended the request, and whose fault it
// was: a client's (a malformed body, a client gone) at Info, since a
// client can cause as many as it likes; the upstream's or the proxy's at
// Warn. A response whose head had gone out before the failure was cut
// short: the client saw a truncated response, whatever its status says.
func (r *request) logFailure(err error, truncated bool) {
	s := &r.sess
	fault := FaultOf(err)
	level := slog.LevelWarn
	if fault == ClientFault {
		level = slog.LevelInfo
	}
	msg := "request failed"
	if truncated {
		msg = "response truncated"
	}
	r.srv.Logger.Log(context.Background(), level, msg, "service", r.srv.Name, "client", s.Client,
		"method", string(r.req.Method), "target", string(r.req.Target), "status", s.Status,
		"fault", fault.String(), "request_id", string(s.RequestID), "err", err)
}

// run is the request pipeline: filter, choose a peer, send, relay.
func (r *request) run(s *Session) error {
	if answered, err := r.checkLimits(s); answered {
		return err
	}
	p := r.srv.Proxy
	if f, ok := p.(RequestFilter); ok {
		done, err := f.RequestFilter(s)
		if err != nil {
			return fmt.Errorf("%w: request filter: %w", ErrFilter, err)
		}
		if done {
			return nil
		}
	}
	if err := r.checkBody(s); err != nil {
		return err
	}
	if r.req.Expect100 {
		// Ask for the body ourselves: the upstream's 100 would arrive
		// only after we had started waiting for the body it asks for.
		r.req.Header.Del("Expect")
		if err := r.down.continue100(); err != nil {
			return fmt.Errorf("%w: %w", ErrDownstream, err)
		}
	}
	r.prepareUpstreamRequest()

	staleRetries := 0
	for attempt := 0; ; attempt++ {
		s.freeSlot() // the last attempt's, before another is taken
		peer, err := r.nextPeer()
		if err != nil {
			return err
		}
		r.startRetry(peer.Retry)
		s.Tried = append(s.Tried, peer)
		s.Attempts++
		r.upStatus = 0
		r.retry.reason = retry.None
		key := r.poolKey(peer)
		uc, cc, dialed, err := r.srv.Pool.connect(peer, key)
		s.Reused, s.Connect, s.FirstByte = dialed == 0, dialed, 0
		if err != nil {
			r.report(peer, err)
			if r.retry.policy != nil {
				if upstreamFailed(err) && r.retryFailure(retry.Connect, peer, err) {
					continue
				}
				return err
			}
			if attempt < s.MaxRetries && r.mayRetryConnect(peer, err) {
				s.Retries[retry.Connect]++
				continue
			}
			return err
		}
		if f, ok := p.(UpstreamRequestFilter); ok {
			if err := f.UpstreamRequestFilter(s, &r.req); err != nil {
				if uc != nil {
					uc.close()
				}
				return fmt.Errorf("%w: upstream request filter: %w", ErrFilter, err)
			}
		}
		if peer.Backend != nil {
			peer.Backend.Acquire()
		}
		if cc != nil {
			err = r.exchangeH2(cc, peer)
		} else {
			err = r.exchange(uc, peer)
		}
		err = r.abort.settle(err)
		if peer.Backend != nil {
			peer.Backend.Release()
		}
		s.freeSlot()
		stale := err != nil && isStale(err)
		if stale && staleRetries < maxStaleRetries {
			// A pooled connection the upstream had closed: the request
			// did not reach it, so send it again. The key's idle
			// connections are dropped, but one returned by a request in
			// flight may be just as stale (an upstream draining for an
			// upgrade closes them all): hence a few tries, not one.
			staleRetries++
			r.retry.stale++
			s.Tried = s.Tried[:len(s.Tried)-1]
			attempt--
			r.srv.Pool.dropKey(key)
			continue
		}
		if !stale {
			// A stale connection says nothing of the backend: it closed
			// an idle connection, as it may.
			r.report(peer, err)
		}
		if err == errRetried {
			continue // the next peer is chosen
		}
		if err != nil && r.retry.reason != retry.None && r.retryFailure(r.retry.reason, peer, err) {
			continue
		}
		return err
	}
}

// report tells the backend behind peer what became of this request's
// attempt on it, for passive health (lb.Backend.Report), once per
// attempt. Once the response head arrived its status decides
// (lb.OutcomeOf: 502, 503 and 504 are gateway failures, other 5xx server
// errors), whatever becomes of the body: a body cut short is not told
// from a client too slow to take it. Before the head, a failure of the
// upstream's (refused, timed out connecting or waiting, reset or closed,
// a malformed head) is a gateway failure. A client's fault, the proxy's,
// or a gRPC deadline the client chose says nothing of the backend and is
// not reported.
func (r *request) report(peer *Peer, err error) {
	if peer.Backend == nil {
		return
	}
	if r.upStatus != 0 {
		peer.Backend.Report(lb.OutcomeOf(r.upStatus))
		return
	}
	if err != nil && upstreamFailed(err) {
		peer.Backend.Report(lb.OutcomeGatewayFailure)
	}
}

// upstreamFailed reports whether err, which ended an attempt before a
// response head, is the upstream's failure.
func upstreamFailed(err error) bool {
	return FaultOf(err) == UpstreamFault && !errors.Is(err, ErrDownstream) &&
		!errors.Is(err, errGRPCDeadline) && !errors.Is(err, errPoolClosed) && !errors.Is(err, errOwnerGone)
}

func (r *request) mayRetryConnect(peer *Peer, err error) bool {
	if f, ok := r.srv.Proxy.(FailToConnect); ok {
		return f.FailToConnect(&r.sess, peer, err)
	}
	r.srv.Logger.Info("upstream connect failed; trying another", "service", r.srv.Name, "peer", peer.Addr,
		"request_id", string(r.sess.RequestID), "err", err)
	return true
}

// maxStaleRetries bounds the resends of one request after stale pooled
// connections; each try drops the upstream's idle connections.
const maxStaleRetries = 3

// staleConnError reports that a reused connection failed before the
// upstream could have seen the request.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string { return "stale pooled connection: " + e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

// isStale reports whether err is a staleConnError. It is kept out of the
// request loop so that its errors.As target, which escapes, is only
// allocated on the error path.
func isStale(err error) bool {
	var stale *staleConnError
	return errors.As(err, &stale)
}

// exchange sends the request on the HTTP/1.1 connection uc and relays the
// response. It owns uc: it returns it to the pool or closes it.
func (r *request) exchange(uc *upstreamConn, peer *Peer) error {
	t := peer.Timeouts.withDefaults()
	hasBody := r.req.ContentLength > 0 || r.req.Chunked
	retryable := uc.reused && !hasBody && idempotent(r.req.Method)
	received := uc.src.received
	if err := r.abort.watch(uc.raw, nil); err != nil {
		r.srv.Pool.put(uc) // unused, as good as it was
		return fmt.Errorf("%w: %w", ErrDownstream, err)
	}
	now := time.Now()
	if !hasBody {
		// Let the other connections whose requests are in reach this point
		// first, so the upstream gets its requests in a burst: a send to a
		// backend asleep in epoll_wait pays for waking it (an IPI on a
		// virtual machine), one to a backend still busy with the previous
		// request does not. In a c32 profile the wake-ups fell from 6 % to
		// 4 % of weir's samples, and CPU per request by about 5 %.
		runtime.Gosched()
	}
	if err := r.sendRequest(uc, t, now); err != nil {
		uc.close()
		if retryable && neverAnswered(uc, received, err) {
			return &staleConnError{err}
		}
		err = upstreamWriteError(peer.Addr, err)
		r.retry.reason = failureReason(err, true)
		return err
	}
	if hasBody { // streaming it may have taken a while
		now = time.Now()
	}
	head := r.perTryTimeout(t.Read)
	uc.dl.setRead(now.Add(head), head)
	// The answer cannot be there yet: reading now would only meet EAGAIN
	// and wait in the poller, a wasted system call per request. Other
	// connections' work goes first (if there is any), and by then it
	// usually is. A third fewer reads, a tenth less CPU per request.
	runtime.Gosched()
	if err := r.readResponseHead(uc); err != nil {
		uc.close()
		if retryable && neverAnswered(uc, received, err) {
			return &staleConnError{err}
		}
		nothing := uc.src.received == received
		err = upstreamReadError(peer.Addr, err)
		r.retry.reason = failureReason(err, nothing)
		return err
	}
	r.upStatus = r.resp.Status
	r.sess.FirstByte = time.Since(now)
	if r.retry.policy != nil && r.retryStatus(r.resp.Status) {
		r.discard(uc)
		return errRetried
	}
	if r.resp.Status == 101 {
		return r.down.tunnel(r, uc)
	}
	stripConnectionListed(&r.resp.Header)
	if err := r.filterResponse(); err != nil {
		uc.close()
		return err
	}
	reusable, err := r.relayResponse(uc, t)
	// An abort that fired meanwhile has closed uc.
	if err != nil || !reusable || r.abort.unwatch() != nil {
		uc.close()
		return err
	}
	r.srv.Pool.put(uc)
	return nil
}

// neverAnswered reports whether err, which ended an exchange on uc, means
// the connection closed before the upstream sent a single byte since the
// request started (received counted them then): a pooled connection the
// upstream had already closed, which never saw the request (RFC 9112
// §9.3.1). Once any byte arrived, even one of a malformed head or of an
// interim response, the upstream saw the request and answers for it: it
// is never sent again. A timeout proves nothing either way.
func neverAnswered(uc *upstreamConn, received int64, err error) bool {
	return uc.src.received == received && !isTimeout(err) && !errors.Is(err, ErrDownstream)
}

// readResponseHead reads the upstream's response head, relaying interim
// (1xx) responses other than 101.
func (r *request) readResponseHead(uc *upstreamConn) error {
	for {
		if err := uc.r.ReadResponse(&r.resp, r.req.Method, responseLimits(r.srv.Limits)); err != nil {
			return err
		}
		st := r.resp.Status
		if st >= 200 || st == 101 {
			return nil
		}
		r.retry.interim = true
		if err := r.down.interim(st, r.resp.Reason, &r.resp.Header); err != nil {
			return fmt.Errorf("%w: %w", ErrDownstream, err)
		}
	}
}

func upstreamReadError(addr string, err error) error {
	if isTimeout(err) {
		return fmt.Errorf("%w: %s: %w", ErrUpstreamTimeout, addr, err)
	}
	if errors.Is(err, ErrDownstream) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrUpstreamProtocol, addr, err)
}

// upstreamWriteError classifies a failure to send the request: the
// client's when reading its body failed, else the upstream's.
func upstreamWriteError(addr string, err error) error {
	if errors.Is(err, ErrDownstream) || errors.Is(err, ErrFilter) {
		return err
	}
	if isTimeout(err) {
		return fmt.Errorf("%w: %s: sending the request: %w", ErrUpstreamTimeout, addr, err)
	}
	return fmt.Errorf("%w: %s: sending the request: %w", ErrUpstreamProtocol, addr, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// sendRequest writes the request head and streams the request body.
// now is the time the head's write deadline counts from.
func (r *request) sendRequest(uc *upstreamConn, t Timeouts, now time.Time) error {
	uc.dl.setWrite(now.Add(t.Write), t.Write)
	req := &r.req
	buf := h1.AppendRequestLine(r.scratch[:0], req.Method, req.Target, 1)
	buf = appendFields(buf, &req.Header)
	if !req.Header.Has("Host") {
		// An HTTP/1.0 request may lack Host; an HTTP/1.1 one may not
		// (RFC 9112 §3.2), and servers refuse it.
		buf = append(buf, "Host: "...)
		buf = append(buf, upstreamHost(uc.key.addr)...)
		buf = append(buf, "\r\n"...)
	}
	switch {
	case req.Chunked:
		buf = append(buf, "Transfer-Encoding: chunked\r\n"...)
	case req.ContentLength > 0:
		buf = append(buf, "Content-Length: "...)
		buf = strconv.AppendInt(buf, req.ContentLength, 10)
		buf = append(buf, "\r\n"...)
	}
	if req.Upgrade != nil {
		buf = append(buf, "Connection: upgrade\r\nUpgrade: "...)
		buf = append(buf, req.Upgrade...)
		buf = append(buf, "\r\n"...)
	}
	buf = append(buf, "\r\n"...)
	r.scratch = buf[:0]
	if _, err := uc.w.Write(buf); err != nil {
		return err
	}
	if err := r.sendRequestBody(uc, t); err != nil {
		return err
	}
	return uc.w.Flush()
}

func (r *request) sendRequestBody(uc *upstreamConn, t Timeouts) error {
	body := r.requestBody()
	if body == nil {
		return nil
	}
	dst := io.Writer(uc.w)
	if r.req.Chunked {
		r.upChunked.Reset(uc.w)
		dst = &r.upChunked
	}
	r.dw = deadlineWriter{dl: &uc.dl, w: dst, flush: uc.w, timeout: t.Write}
	n, rerr, werr := copyBody(&r.dw, body, r.copyBuffer(r.req.ContentLength))
	r.countBody(n)
	if rerr != nil {
		return fmt.Errorf("%w: reading request body: %w", ErrDownstream, rerr)
	}
	if werr != nil {
		return werr
	}
	r.bodyDone = true
	if r.req.Chunked {
		return r.upChunked.Close(&r.reqTrailer)
	}
	return nil
}

// noBody reports whether the response to this request has no body.
func (r *request) noBody(status int) bool {
	return isHead(r.req.Method) || status == 204 || status == 304
}

// filterResponse runs the Proxy's ResponseFilter on the upstream's
// response head, HTTP/1.1's or HTTP/2's. The upstream's X-Request-Id goes
// first when the proxy sets its own, so the client gets one, the id of
// the logs.
func (r *request) filterResponse() error {
	if len(r.sess.RequestID) > 0 {
		r.resp.Header.Del(RequestIDHeader)
	}
	if f, ok := r.srv.Proxy.(ResponseFilter); ok {
		if err := f.ResponseFilter(&r.sess, &r.resp); err != nil {
			return fmt.Errorf("response filter: %w", err)
		}
	}
	return nil
}

// setByFilter reports whether a response head already carries an
// X-Request-Id when the downstream writes it: the upstream's was dropped
// before the filters ran, so this one is a filter's (a route's response
// header rule), which stands instead of the proxy's.
func setByFilter(h *h1.Header) bool {
	return h != nil && h.Has(RequestIDHeader)
}

// relayResponse sends the response head and body downstream. It reports
// whether uc may be reused.
func (r *request) relayResponse(uc *upstreamConn, t Timeouts) (bool, error) {
	resp := &r.resp
	noBody := r.noBody(resp.Status)
	length := resp.ContentLength
	if resp.Chunked {
		length = -1
	}
	enc, err := r.sendHead(resp.Status, resp.Reason, &resp.Header, length, noBody)
	if err != nil {
		return false, err
	}
	if noBody {
		return resp.KeepAlive, r.endBody(nil)
	}
	var body io.Reader
	r.respTrailer.Reset()
	switch {
	case resp.Chunked:
		body = uc.r.BodyChunked(&r.respTrailer)
	case resp.ContentLength >= 0:
		body = uc.r.BodyLength(resp.ContentLength)
	default:
		body = uc.r.BodyUntilClose()
	}
	r.dr = deadlineReader{dl: &uc.dl, r: body, timeout: t.Read}
	if resp.ContentLength >= 0 && !resp.Chunked {
		// A read of a length-delimited body that is already buffered
		// (a small response arrives with its head) touches no socket.
		r.dr.buffered = uc.r
	}
	uc.src.held = r.down.held()
	rerr, werr := r.relayBody(&r.dr, enc, r.copyBuffer(length))
	uc.src.held = nil
	if werr != nil {
		return false, werr
	}
	if rerr != nil {
		return false, upstreamReadError(uc.key.addr, rerr)
	}
	var tr *h1.Header
	if r.respTrailer.Len() > 0 {
		tr = &r.respTrailer
	}
	return resp.KeepAlive && (resp.Chunked || resp.ContentLength >= 0), r.endBody(tr)
}

// sendHead sends the upstream's response head downstream, length
// framing its body (-1: unknown), and returns the encoder the Proxy's
// ResponseBodyFilter chose for the body, if any: the encoded body's
// length is known at its end only.
func (r *request) sendHead(status int, reason []byte, h *h1.Header, length int64, noBody bool) (BodyEncoder, error) {
	enc := r.bodyEncoder(noBody)
	if enc != nil {
		length = -1
	}
	r.sess.Status = status
	if err := r.down.writeHead(status, reason, h, length, noBody); err != nil {
		abandon(enc)
		return nil, fmt.Errorf("%w: %w", ErrDownstream, err)
	}
	return enc, nil
}

// bodyEncoder returns the encoder the Proxy's ResponseBodyFilter chose
// for this response's body, nil when it has none or chose none.
func (r *request) bodyEncoder(noBody bool) BodyEncoder {
	if noBody {
		return nil
	}
	f, ok := r.srv.Proxy.(ResponseBodyFilter)
	if !ok {
		return nil
	}
	r.encOut = countWriter{w: r.down.body()}
	return f.ResponseBodyFilter(&r.sess, &r.resp, &r.encOut)
}

func abandon(enc BodyEncoder) {
	if enc != nil {
		enc.Abandon()
	}
}

// relayBody copies the response body from src downstream, through enc
// when it is not nil, flushing enc after every chunk read. A failed write
// (werr) is the client's fault when the client's side failed it, else
// the encoder's (the proxy's); a failed read (rerr) is left to the caller
// to classify.
func (r *request) relayBody(src io.Reader, enc BodyEncoder, buf []byte) (rerr, werr error) {
	if enc == nil {
		n, rerr, werr := copyBody(r.down.body(), src, buf)
		r.sess.BytesSent += n
		if werr != nil {
			return rerr, fmt.Errorf("%w: %w", ErrDownstream, werr)
		}
		return rerr, nil
	}
	r.encIn = encodeWriter{enc: enc}
	_, rerr, werr = copyBody(&r.encIn, src, buf)
	if rerr == nil && werr == nil {
		werr = enc.Close()
	} else {
		enc.Abandon()
	}
	r.encIn = encodeWriter{}
	r.sess.BytesSent += r.encOut.n
	if werr != nil {
		if r.encOut.err != nil {
			return rerr, fmt.Errorf("%w: %w", ErrDownstream, werr)
		}
		return rerr, fmt.Errorf("response body filter: %w", werr)
	}
	return rerr, nil
}

// encodeWriter writes through a BodyEncoder and flushes it after every
// write: what the upstream sent reaches the client before the relay
// waits for more.
type encodeWriter struct{ enc BodyEncoder }

func (e *encodeWriter) Write(p []byte) (int, error) {
	n, err := e.enc.Write(p)
	if err == nil {
		err = e.enc.Flush()
	}
	return n, err
}

// countWriter is the downstream side of an encoder: it counts the bytes
// that reached the client and keeps the client's write error, so that the
// relay can tell it from the encoder's own.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

func (r *request) endBody(trailer *h1.Header) error {
	if err := r.down.endBody(trailer); err != nil {
		return fmt.Errorf("%w: %w", ErrDownstream, err)
	}
	return nil
}

// respond answers the request with a complete response (Session.Respond).
func (r *request) respond(status int, header *h1.Header, body []byte) error {
	if r.sess.GRPC && status >= 400 {
		return r.respondGRPC(status, body)
	}
	noBody := r.noBody(status)
	r.sess.Status = status
	if err := r.down.writeHead(status, nil, header, int64(len(body)), noBody); err != nil {
		return err
	}
	if !noBody && len(body) > 0 {
		if _, err := r.down.body().Write(body); err != nil {
			return err
		}
		r.sess.BytesSent += int64(len(body))
	}
	return r.down.endBody(nil)
}

// writeError answers with an empty response of the given status.
func (r *request) writeError(status int) {
	r.respond(status, nil, nil)
}

// appendFields writes every field of h except the framing and hop-by-hop
// ones, which the proxy sets itself.
func appendFields(buf []byte, h *h1.Header) []byte {
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if h1.IsHopByHop(name) || asciiEqualFold(name, "Content-Length") {
			continue
		}
		buf = h1.AppendField(buf, name, value)
	}
	return buf
}

// prepareUpstreamRequest turns the downstream request head into the
// upstream one: hop-by-hop fields out, forwarding fields in.
func (r *request) prepareUpstreamRequest() {
	req := &r.req
	stripConnectionListed(&req.Header)
	if bytes.HasPrefix(req.Target, []byte("http://")) || bytes.HasPrefix(req.Target, []byte("https://")) {
		// absolute-form: the authority is the Host, the upstream gets the
		// origin-form.
		rest := req.Target[bytes.Index(req.Target, []byte("//"))+2:]
		slash := bytes.IndexByte(rest, '/')
		authority, path := rest, []byte("/")
		if slash >= 0 {
			authority, path = rest[:slash], rest[slash:]
		}
		req.Header.SetValue("Host", authority)
		req.Host = authority
		req.Target = path
	}
	if id := r.sess.RequestID; len(id) > 0 {
		req.Header.SetValue(RequestIDHeader, id)
	}
	if r.sess.NoForwardedHeaders {
		return
	}
	ip := r.sess.ClientIP()
	if prev, ok := req.Header.Get("X-Forwarded-For"); ok && len(prev) > 0 {
		v := append(append(append(r.scratch[:0], prev...), ", "...), ip...)
		req.Header.SetValue("X-Forwarded-For", v)
	} else {
		req.Header.SetValue("X-Forwarded-For", ip)
	}
	if r.https {
		req.Header.Set("X-Forwarded-Proto", "https")
	} else {
		req.Header.Set("X-Forwarded-Proto", "http")
	}
	if len(req.Host) > 0 {
		req.Header.SetValue("X-Forwarded-Host", req.Host)
	}
}

// stripConnectionListed removes the fields the Connection header names:
// they concern this hop only (RFC 9110 §7.6.1), in requests and responses
// alike. The hop-by-hop fields themselves are skipped when the head is
// written.
func stripConnectionListed(h *h1.Header) {
	if _, ok := h.Get("Connection"); !ok {
		return // the common case, in one pass over the fields
	}
	for i := h.Len() - 1; i >= 0; i-- {
		name, _ := h.At(i)
		if !h1.IsHopByHop(name) && h1.ConnectionListed(h, name) {
			h.DelAt(i)
		}
	}
}

// deadlineReader extends the read deadline before every read, so a body
// may take as long as it needs while each read is bounded.
type deadlineReader struct {
	dl      *deadlines
	r       io.Reader
	timeout time.Duration
	// buffered, when set, is the h1.Reader under a length-delimited
	// body: while it holds bytes, a read is served from them and needs
	// no deadline.
	buffered *h1.Reader
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.buffered == nil || d.buffered.Buffered() == 0 {
		d.dl.setRead(time.Now().Add(d.timeout), d.timeout)
	}
	return d.r.Read(p)
}

// deadlineWriter extends the write deadline before every write (unless
// dl is nil: the buffer's destination then sets it), and flushes the
// connection's buffer after it: a body is relayed as it arrives
// (server-sent events, long polls), never held back in a buffer while the
// proxy waits for more. A small body read in one go still leaves in one
// write with its head. Without flush (the last response of a client
// connection, when small and of known length) the body stays in the
// buffer until the response ends.
type deadlineWriter struct {
	dl      *deadlines
	w       io.Writer
	flush   *bufio.Writer
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.dl != nil {
		d.dl.setWrite(time.Now().Add(d.timeout), d.timeout)
	}
	n, err := d.w.Write(p)
	if err == nil && d.flush != nil {
		err = d.flush.Flush()
	}
	return n, err
}

// copyBody copies src to dst through buf, or a pooled buffer when buf is
// nil, and tells read errors from write errors, so the proxy knows which
// side failed.
func copyBody(dst io.Writer, src io.Reader, buf []byte) (written int64, rerr, werr error) {
	if buf == nil {
		bp := copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bp)
		buf = *bp
	}
	for {
		n, err := src.Read(buf)
		if n > 0 {
			m, err := dst.Write(buf[:n])
			written += int64(m)
			if err != nil {
				return written, nil, err
			}
		}
		if err == io.EOF {
			return written, nil, nil
		}
		if err != nil {
			return written, err, nil
		}
	}
}

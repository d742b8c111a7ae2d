package l7

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/retry"
	"golang.org/x/net/http2"
)

// HTTP/2 towards upstreams is golang.org/x/net/http2's Transport, a
// multiplexed connection per peer key; downstream it is weir's own server
// (h2conn.go). Only the framing differs from HTTP/1.1: every request runs
// the same pipeline (request.go).

// exchangeH2 sends the request on the multiplexed HTTP/2 connection cc
// and relays the response.
func (r *request) exchangeH2(cc *http2.ClientConn, peer *Peer) error {
	t := peer.Timeouts.withDefaults()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if err := r.abort.watch(nil, cancel); err != nil {
		return fmt.Errorf("%w: %w", ErrDownstream, err)
	}
	// The read timeout bounds the wait for the head and each wait for
	// body bytes after it: a timer re-armed by every read.
	timer := time.AfterFunc(r.perTryTimeout(t.Read), func() { cancel(ErrUpstreamTimeout) })
	defer timer.Stop()
	// A gRPC request's grpc-timeout bounds the whole exchange, head and
	// body.
	if deadline := r.grpcDeadline(); !deadline.IsZero() {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w: before sending to %s", errGRPCDeadline, peer.Addr)
		}
		expire := time.AfterFunc(left, func() { cancel(errGRPCDeadline) })
		defer expire.Stop()
	}

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
			// A transport Read waiting for the client's next bytes
			// returns now, whenever the transport gets to Close.
			body.closing.Store(true)
			body.abandon()
			select {
			case <-body.closed:
			case <-time.After(t.Write):
			}
			// The stream may go back to its pool: a late Close must
			// not touch it.
			body.detach()
			if r.retry.body != nil {
				r.reclaim(body)
			}
			r.bodyDone = body.eof.Load()
			r.countBody(body.n.Load())
		}()
	}
	retryable := r.req.ContentLength <= 0 && !r.req.Chunked && idempotent(r.req.Method)
	sent := time.Now()
	resp, err := cc.RoundTrip(hreq)
	if err != nil {
		if berr := body.failure(); berr != nil {
			return fmt.Errorf("%w: reading request body: %w", ErrDownstream, berr)
		}
		if cause := context.Cause(ctx); errors.Is(cause, ErrUpstreamTimeout) {
			r.retry.reason = retry.Timeout
			return fmt.Errorf("%w: %s: %w", cause, peer.Addr, err)
		}
		if retryable && h2Unprocessed(err) {
			return &staleConnError{err}
		}
		if ctx.Err() == nil {
			// The stream or its connection ended before a head.
			r.retry.reason = retry.Reset
		}
		return fmt.Errorf("%w: %s: %w", ErrUpstreamProtocol, peer.Addr, err)
	}
	defer resp.Body.Close()
	r.upStatus = resp.StatusCode
	if r.retry.policy != nil && r.retryStatus(resp.StatusCode) {
		// Closing the body (deferred) resets the stream.
		return errRetried
	}
	r.sess.FirstByte = time.Since(sent)
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
	if err := r.filterResponse(); err != nil {
		return err
	}
	noBody := r.noBody(rs.Status)
	enc, err := r.sendHead(rs.Status, nil, &rs.Header, rs.ContentLength, noBody)
	if err != nil {
		return err
	}
	if noBody {
		return r.endBody(nil)
	}
	respBody := &timedReader{r: resp.Body, timer: timer, d: t.Read, held: r.down.held()}
	rerr, werr := r.relayBody(respBody, enc, r.copyBuffer(rs.ContentLength))
	if werr != nil {
		return werr
	}
	if rerr != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrUpstreamTimeout) {
			return fmt.Errorf("%w: %s: %w", cause, peer.Addr, rerr)
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
	if host == "" {
		// An HTTP/2 request needs an authority (RFC 9113 §8.3.1), which
		// an HTTP/1.0 request without Host does not give.
		host = upstreamHost(peer.Addr)
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
	if b := r.requestBody(); b != nil {
		body = &h2ReqBody{r: b, closed: make(chan struct{}), turn: make(chan struct{}, 1)}
		body.turn <- struct{}{}
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
		if r.sess.GRPC && asciiEqualFold(name, "Grpc-Timeout") {
			var buf [16]byte
			value = r.upstreamGRPCTimeout(buf[:0], value)
		}
		hreq.Header.Add(string(name), string(value))
	}
	if r.sess.GRPC {
		// gRPC servers may insist on it (the client's, hop-by-hop, was
		// not kept).
		hreq.Header.Set("Te", "trailers")
	}
	return hreq, body, nil
}

// h2Unprocessed reports whether err, which failed an HTTP/2 round trip,
// says the upstream never processed the request (RFC 9113 §8.7): it
// refused the stream, or its GOAWAY's last stream id is below the
// request's, or the connection was unusable before the request was sent.
// Anything else (a malformed response, a reset, a GOAWAY covering the
// stream) may have reached the application, so the request is not sent
// again.
//
// x/net/http2 reports the last three with unexported sentinel errors,
// known here by their text; TestH2UpstreamRequestIsResentOnlyWhenUnprocessed
// fails if a new version of the package changes it.
func h2Unprocessed(err error) bool {
	var se http2.StreamError
	if errors.As(err, &se) {
		return se.Code == http2.ErrCodeRefusedStream
	}
	switch err.Error() {
	case "http2: Transport received Server's graceful shutdown GOAWAY",
		"http2: client conn not usable",
		"http2: client conn could not be established":
		return true
	}
	return false
}

// h2ReqBody is a request body handed to the HTTP/2 transport. It records
// whether it was read to the end, how reading it failed, and when the
// transport closed it.
type h2ReqBody struct {
	r      io.Reader
	n      atomic.Int64 // bytes read, for Session.BytesReceived
	eof    atomic.Bool
	err    atomic.Pointer[error]
	once   sync.Once
	closed chan struct{}
	// closing is set once the transport closes the body, or the
	// exchange ends: a read that interrupts is not the client's failure.
	closing atomic.Bool
	// mu guards detached, set once the exchange has ended: r belongs
	// to the stream, which may then serve another request.
	mu       sync.Mutex
	detached bool
	// turn is the right to read r, taken by each Read and given back
	// after it; the exchange takes it for good to have r to itself
	// again (reclaim), and a Read after that fails.
	turn chan struct{}
}

// errBodyReclaimed fails a transport's Read of a request body once the
// exchange has ended and taken the body back.
var errBodyReclaimed = errors.New("request body taken back by the ended exchange")

func (b *h2ReqBody) Read(p []byte) (int, error) {
	select {
	case <-b.turn:
	default:
		return 0, errBodyReclaimed
	}
	defer func() { b.turn <- struct{}{} }()
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	switch {
	case err == io.EOF:
		b.eof.Store(true)
	case err != nil && !b.closing.Load():
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// failure returns the error reading the client's body failed with: the
// client's fault, whatever the transport made of it. b may be nil.
func (b *h2ReqBody) failure() error {
	if b == nil {
		return nil
	}
	if p := b.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close is the transport's: the upstream stream ended (answered in full,
// reset, or its connection gone), and a Read in progress must return
// rather than wait for the client's next bytes.
func (b *h2ReqBody) Close() error {
	b.once.Do(func() {
		b.closing.Store(true)
		b.abandon()
		close(b.closed)
	})
	return nil
}

// abandon makes a Read of the client's body waiting for bytes return
// (HTTP/2 clients' bodies only), unless the exchange has ended.
func (b *h2ReqBody) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a, ok := b.r.(interface{ abandon() }); ok && !b.detached {
		a.abandon()
	}
}

// detach ends b's hold on the client's body.
func (b *h2ReqBody) detach() {
	b.mu.Lock()
	b.detached = true
	b.mu.Unlock()
}

// timedReader re-arms timer before every read of an HTTP/2 response body.
// Any read may wait (the transport says nothing of what it buffered), so
// what the client's side holds (held) is sent first: bytes reach the
// client as they arrive.
type timedReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
	held  *bufio.Writer
}

func (t *timedReader) Read(p []byte) (int, error) {
	if err := sendHeld(t.held); err != nil {
		return 0, err
	}
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

// errPoolClosed and errOwnerGone fail a new HTTP/2 connection for a
// reason of weir's (it is shutting down) or the client's (its connection,
// which the upstream connection was to announce, ended), not the
// upstream's: passive health does not count them.
var (
	errPoolClosed = errors.New("pool closed")
	errOwnerGone  = errors.New("downstream connection ended")
)

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
		return nil, errPoolClosed
	}
	if key.owner != nil && !p.own(key) {
		p.mu.Unlock()
		cc.Close()
		return nil, errOwnerGone
	}
	p.h2[key] = cc
	p.mu.Unlock()
	return cc, nil
}

package l7

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/limit"
)

// ClientLimits bound what each client of a Server may ask of it: a
// request rate, a number of open connections, and a request body size.
// Heads are bounded by Server.Limits (431); ClientLimits counts those
// refusals too. A nil field (or 0) sets no limit; a limit configured but
// not reached costs a request one token bucket update (RateLimiter.Allow)
// and a connection one count (ConnLimiter), without allocating.
type ClientLimits struct {
	// Rate, when not nil, limits each client's requests: over it a
	// request is answered 429 with Retry-After (gRPC: RESOURCE_EXHAUSTED)
	// before any filter or upstream sees it, and the connection stays
	// open.
	Rate *limit.RateLimiter
	// Conns, when not nil, limits each client's open connections: a
	// connection over it is closed as soon as it is accepted (after its
	// PROXY protocol header, so the limit is the real client's; before
	// any TLS handshake), unanswered.
	Conns *limit.ConnLimiter
	// MaxRequestBody, when > 0, bounds a request body in bytes (each
	// request's Session.MaxRequestBody starts from it, and a
	// RequestFilter, a route, may change it): a declared Content-Length
	// over it is answered 413 after the RequestFilter, before anything
	// goes upstream (and instead of 100 Continue); a body of unknown
	// length (chunked, or HTTP/2 without content-length) that crosses it
	// fails the request as the client's fault: 413 if no response head
	// went out yet, the upstream exchange abandoned, the backend not
	// blamed.
	MaxRequestBody int64
	// Now, when not nil, is the rate limiter's clock (tests); otherwise
	// the request's start time is used, read once per request anyway.
	Now func() time.Time

	counts [numLimits]atomic.Uint64
}

// Limit names one of a server's client limits, for ClientLimits.Limited.
type Limit uint8

// The limits ClientLimits counts refusals of.
const (
	// LimitRate: a request over its client's rate (429).
	LimitRate Limit = iota
	// LimitBody: a request body over MaxRequestBody (413).
	LimitBody
	// LimitHeader: a request head over Server.Limits (431).
	LimitHeader
	// LimitClientConnections: a connection over its client's limit
	// (closed).
	LimitClientConnections
	numLimits
)

// Limits lists every Limit, in order.
var Limits = [...]Limit{LimitRate, LimitBody, LimitHeader, LimitClientConnections}

var limitNames = [numLimits]string{"rate", "body", "header", "client_connections"}

// String returns the limit's name as metrics label it: rate, body,
// header, client_connections.
func (l Limit) String() string {
	if l < numLimits {
		return limitNames[l]
	}
	return "limit(" + strconv.Itoa(int(l)) + ")"
}

// Limited returns how many requests (connections, for
// LimitClientConnections) limit l refused.
func (c *ClientLimits) Limited(l Limit) uint64 {
	if c == nil || l >= numLimits {
		return 0
	}
	return c.counts[l].Load()
}

func (c *ClientLimits) count(l Limit) {
	if c != nil {
		c.counts[l].Add(1)
	}
}

// ErrRequestBodyTooLarge is the client's fault of a request body over
// ClientLimits.MaxRequestBody; the client gets 413 when a head can still
// be sent.
var ErrRequestBodyTooLarge = errors.New("request body over the size limit")

// bodyTooLarge is ErrRequestBodyTooLarge as a client fault, made once.
var bodyTooLarge = fmt.Errorf("%w: %w", ErrDownstream, ErrRequestBodyTooLarge)

// acquireConn counts a new connection of its client, and reports false,
// having counted the refusal, when the client is at its limit.
func (c *conn) acquireConn() bool {
	cl := c.srv.ClientLimits
	if cl == nil || cl.Conns == nil {
		return true
	}
	if !cl.Conns.Acquire(c.remote.Addr()) {
		cl.count(LimitClientConnections)
		// Debug, not Info: a client this far over its limit is opening
		// connections in a loop, and a line each would flood the log
		// (the metric counts them).
		c.srv.Logger.Debug("connection refused: client at its connection limit", "service", c.srv.Name,
			"client", c.remote, "max_client_connections", cl.Conns.Max(), "fault", ClientFault.String())
		return false
	}
	c.counted = true
	return true
}

// releaseConn gives back the count acquireConn took, once.
func (c *conn) releaseConn() {
	if c.counted {
		c.counted = false
		c.srv.ClientLimits.Conns.Release(c.remote.Addr())
	}
}

// checkLimits applies the limits checked before any phase: the rate
// (429). It reports whether the request was answered, and the error of
// an answer that failed.
func (r *request) checkLimits(s *Session) (answered bool, err error) {
	cl := r.srv.ClientLimits
	if cl == nil || cl.Rate == nil {
		return false, nil
	}
	now := s.Start
	if cl.Now != nil {
		now = cl.Now()
	}
	if ok, wait := cl.Rate.Allow(s.Client.Addr(), now); !ok {
		cl.count(LimitRate)
		return true, r.tooManyRequests(wait)
	}
	return false, nil
}

// checkBody refuses a declared body length over the request's limit,
// once the RequestFilter (a route) had its say on the limit, before
// anything goes upstream or 100 Continue is sent: the client's fault,
// answered 413.
func (r *request) checkBody(s *Session) error {
	if max := s.MaxRequestBody; max > 0 && r.req.ContentLength > max {
		r.srv.ClientLimits.count(LimitBody)
		return bodyTooLarge
	}
	return nil
}

// maxRequestBody returns the body limit requests start with; 0 for a
// nil c.
func (c *ClientLimits) maxRequestBody() int64 {
	if c == nil {
		return 0
	}
	return c.MaxRequestBody
}

// tooManyRequests answers 429 with Retry-After: the wait in whole
// seconds, rounded up (at least 1). The response head is free to use:
// nothing went upstream.
func (r *request) tooManyRequests(wait time.Duration) error {
	secs := int64((wait + time.Second - 1) / time.Second)
	r.resp.Header.Reset()
	var digits [20]byte
	r.resp.Header.Add("Retry-After", string(strconv.AppendInt(digits[:0], max(secs, 1), 10)))
	if err := r.respond(429, &r.resp.Header, nil); err != nil {
		return fmt.Errorf("%w: %w", ErrDownstream, err)
	}
	return nil
}

// limitBody returns body bounded by the request's MaxRequestBody when
// the body's length is unknown (a declared one was checked before):
// reading past the limit fails with the client's fault.
func (r *request) limitBody(body io.Reader) io.Reader {
	max := r.sess.MaxRequestBody
	if body == nil || max <= 0 || !r.req.Chunked {
		return body
	}
	r.bodyLimit = limitedBody{r: body, left: max, cl: r.srv.ClientLimits}
	return &r.bodyLimit
}

// limitedBody reads a request body of unknown length up to a limit.
type limitedBody struct {
	r    io.Reader
	left int64
	cl   *ClientLimits
	over bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.over {
		return 0, ErrRequestBodyTooLarge
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		// Not a byte beyond the limit goes upstream.
		n = int(b.left)
		b.over = true
		b.cl.count(LimitBody)
		err = ErrRequestBodyTooLarge
	}
	b.left -= int64(n)
	return n, err
}

// responseLimits are the bounds of an upstream's response head: the
// server's Limits, which bound requests, but never below h1's defaults,
// so that a service holding its clients' heads small still takes a
// backend's large one (cookies, security policies).
func responseLimits(l h1.Limits) h1.Limits {
	l.MaxHeaderBytes = max(l.MaxHeaderBytes, h1.DefaultMaxHeaderBytes)
	l.MaxHeaders = max(l.MaxHeaders, h1.DefaultMaxHeaders)
	return l
}

package l7

import (
	"io"

	"github.com/weir-lb/weir/pkg/l7/h1"
)

// Proxy is the one phase every proxy implements: choosing the upstream.
//
// UpstreamPeer is called once per attempt. When connecting to the chosen
// peer fails (the request was never sent, so any method may be retried)
// it is called again, with s.Tried listing the peers already tried; a
// load-balanced Proxy skips those. A retry policy (Peer.Retry) calls it
// for the retries it grants, before the failed attempt's answer is
// discarded; when it fails with s.Tried set, once more with s.Tried
// empty (a retry may go to a peer already tried, if no other is left). Returning an error ends the request:
// ErrNoHealthyUpstream answers 503, any other error 502.
type Proxy interface {
	UpstreamPeer(s *Session) (*Peer, error)
}

// CtxMaker is implemented by a Proxy that keeps per-request state: NewCtx
// is called once per request and its result is s.Ctx in every phase.
type CtxMaker interface {
	NewCtx() any
}

// RequestFilter runs first, on the downstream request head. It may answer
// the request itself with s.Respond and return done == true, in which case
// no upstream is contacted. An error answers 500 and is logged.
type RequestFilter interface {
	RequestFilter(s *Session) (done bool, err error)
}

// UpstreamRequestFilter may change the request head just before it is
// sent upstream: rewrite Host, add or remove headers. Hop-by-hop headers
// are already removed and forwarding headers already set. It runs once per
// attempt.
type UpstreamRequestFilter interface {
	UpstreamRequestFilter(s *Session, req *h1.Request) error
}

// ResponseFilter may change the upstream response head before it is sent
// downstream. An error ends the request with 502.
type ResponseFilter interface {
	ResponseFilter(s *Session, resp *h1.Response) error
}

// ResponseBodyFilter may re-encode the response body on its way
// downstream (compression). It is called after ResponseFilter, for a
// response that has a body (not HEAD, 1xx, 204, 304 or an upgrade), before
// the head is sent. It returns nil to relay the body as it is, or an
// encoder writing to dst, having changed the head to match (a
// Content-Encoding, say). The proxy then frames the body itself (chunked
// for HTTP/1.1, DATA frames for HTTP/2) and sends no Content-Length,
// whatever the head says; resp.ContentLength still frames what the
// upstream sends and must not change.
type ResponseBodyFilter interface {
	ResponseBodyFilter(s *Session, resp *h1.Response, dst io.Writer) BodyEncoder
}

// BodyEncoder is what a ResponseBodyFilter returns. The proxy writes the
// body through it, calls Flush after every chunk it reads from the
// upstream (bytes reach the client as they arrive, not when the encoder
// has gathered enough), and Close once the upstream's body has ended,
// before any trailers. When the request fails midway it calls Abandon
// instead: nothing more is written to dst. Either call ends the
// encoder's use; it may return to a pool.
type BodyEncoder interface {
	Write(p []byte) (int, error)
	Flush() error
	Close() error
	Abandon()
}

// FailToConnect is told of each failed connection attempt and decides
// whether to retry (within the server's retry budget).
type FailToConnect interface {
	FailToConnect(s *Session, p *Peer, err error) (retry bool)
}

// Logger is called once when a request ends, with the error that ended it
// (nil on success). s.Status is the status sent downstream (0 when the
// connection failed before a response head was sent).
type Logger interface {
	Log(s *Session, err error)
}

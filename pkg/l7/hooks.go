package l7

import "github.com/weir-lb/weir/pkg/l7/h1"

// Proxy is the one phase every proxy implements: choosing the upstream.
//
// UpstreamPeer is called once per attempt. When connecting to the chosen
// peer fails (the request was never sent, so any method may be retried)
// it is called again, with s.Tried listing the peers already tried; a
// load-balanced Proxy skips those. Returning an error ends the request:
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

package l7

import (
	"crypto/tls"
	"net/netip"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/retry"
)

// Session is one request on its way through the proxy. The proxy reuses
// Sessions: do not keep one, or anything it points to, after Log returns.
type Session struct {
	// Req is the downstream request head. What it holds after the
	// UpstreamRequestFilter phase is what the upstream receives.
	Req *h1.Request
	// Resp is the upstream response head, from the ResponseFilter phase on.
	Resp *h1.Response
	// Client is the downstream peer's address.
	Client netip.AddrPort
	// TLS is the downstream TLS state, nil for plain connections.
	TLS *tls.ConnectionState
	// Ctx is the value CtxMaker.NewCtx returned for this request.
	Ctx any
	// Tried lists the peers tried for this request, in order; the last
	// one served it when the request succeeded.
	Tried []*Peer
	// Start is when the request head was read.
	Start time.Time
	// End is when the request ended: set just before the Observer's
	// RequestDone (zero without an Observer), so that everything it
	// feeds measures one duration.
	End time.Time
	// Status is the status sent downstream; 0 until a head is sent. For
	// a gRPC request the proxy answers with an error itself, it is the
	// HTTP status the error stands for (503, 504, 502, …), though the
	// answer went out as HTTP 200 with GRPCStatus: logs and metrics
	// classify it as any other request's.
	Status int
	// GRPC says the request is gRPC (HTTP/2, content-type
	// application/grpc or application/grpc+…).
	GRPC bool
	// GRPCStatus is the grpc-status the proxy sent itself, in a
	// trailers-only answer or in the trailers ending a response cut
	// short (see GRPCStatus); 0 when it sent none.
	GRPCStatus int
	// BytesSent counts response body bytes sent downstream.
	BytesSent int64
	// BytesReceived counts request body bytes read from the client.
	BytesReceived int64
	// Proto is the protocol the client spoke.
	Proto Proto
	// Attempts counts the times the request was sent, or a connection
	// was tried for it: 1 for a request served at the first try, 0 for
	// one answered without an upstream.
	Attempts int
	// Reused says the last attempt went over a pooled upstream
	// connection. Connect is how long opening the last attempt's new
	// connection took (TCP and TLS), 0 when one was reused.
	Reused  bool
	Connect time.Duration
	// FirstByte is the time from sending the last attempt's request head
	// until the upstream's response head had arrived; 0 when none did.
	FirstByte time.Duration
	// RequestID is the request's id, sent upstream and back in
	// X-Request-Id: the client's when valid, else a new one. Empty when
	// the server does not assign ids (Server.RequestID).
	RequestID []byte
	// Route is the name of the route that took the request, set by a
	// routing proxy (pkg/route) in its RequestFilter, for the metrics'
	// route label and the access log. Empty when the Proxy does no
	// routing, or no route took the request.
	Route string
	// RouteCtx is a routing proxy's own per-request state, as Ctx is the
	// Proxy's: pkg/route keeps the matched route here, which leaves Ctx
	// to the proxy of the route's upstream. Nil without routing.
	RouteCtx any
	// MaxRetries is how many more peers this request may try after a
	// connection attempt fails: Server.MaxRetries when the request
	// starts, which a RequestFilter may change (a route's own setting).
	// A retry policy (Peer.Retry) on the request's first peer governs
	// its retries instead.
	MaxRetries int
	// NoForwardedHeaders stops X-Forwarded-For, -Proto and -Host from
	// being set on this request upstream: Server.NoForwardedHeaders when
	// the request starts, which a RequestFilter may change (a route to a
	// pool that sets none).
	NoForwardedHeaders bool
	// MaxRequestBody bounds this request's body in bytes (0: no bound):
	// ClientLimits.MaxRequestBody when the request starts, which a
	// RequestFilter may change (a route's own max_request_body). Over it
	// the client gets 413 (see ClientLimits).
	MaxRequestBody int64
	// Retries counts this request's retries by why the attempt before
	// each failed (a policy's, Peer.Retry, or the MaxRetries connection
	// retries, all Connect). Resends after a stale pooled connection,
	// which never reached the upstream, are not retries.
	Retries retry.Counts
	// RetryDenied says the retry policy's budget refused a retry this
	// request would have made: the failure at hand was answered.
	RetryDenied bool

	r *request
	// target holds the request target SetTarget gave, reused from one
	// request to the next.
	target []byte
	// received holds the client's own target once SetTarget replaced it;
	// rewritten says it did.
	received  []byte
	rewritten bool
	// keyBuf holds derived selection keys, so that keying by client
	// address allocates nothing.
	keyBuf [64]byte
	// idBuf holds RequestID.
	idBuf [maxRequestID]byte
	// slot is the backend whose max_connections slot the attempt under
	// way holds (slots.go), nil when none.
	slot *lb.Backend
}

func (s *Session) reset(r *request, proto Proto, client netip.AddrPort, tlsState *tls.ConnectionState) {
	tried := s.Tried[:0]
	clear(s.Tried[:cap(s.Tried)])
	*s = Session{Req: &r.req, Resp: &r.resp, Client: client, TLS: tlsState, Tried: tried, Start: time.Now(), Proto: proto, r: r,
		target: s.target[:0], received: s.received[:0]}
}

// SetTarget replaces the request target (s.Req.Target) with a copy of
// target, held in a buffer the Session reuses, so that a RequestFilter
// rewriting paths allocates nothing once the buffer has grown. target
// may overlap the current target. Called from a RequestFilter, the
// upstream request is made from the new target: an absolute-form one
// ("http://host/path") still sets Host from its authority.
func (s *Session) SetTarget(target []byte) {
	if !s.rewritten {
		// Kept for the access log: what the client asked for.
		s.received = append(s.received[:0], s.Req.Target...)
		s.rewritten = true
	}
	// append copies with memmove: an overlapping target is safe.
	s.target = append(s.target[:0], target...)
	n := len(s.target)
	s.Req.Target = s.target[:n:n]
}

// ReceivedTarget returns the request target as the client sent it, before
// any SetTarget: what an access log records.
func (s *Session) ReceivedTarget() []byte {
	if s.rewritten {
		return s.received
	}
	return s.Req.Target
}

// ClientIP returns the client's IP address as text, in a buffer owned by
// the Session (valid until the next request).
func (s *Session) ClientIP() []byte {
	return s.Client.Addr().AppendTo(s.keyBuf[:0])
}

// Respond answers the request directly with status, the fields of header
// (may be nil) and body, as a RequestFilter does. Content-Length is set
// from body; a HEAD request gets the head only. It may be called once.
//
// A gRPC request (s.GRPC) answered with an error status (400 or more)
// gets a gRPC trailers-only response instead: HTTP 200, content-type
// application/grpc, grpc-status GRPCStatus(status) (404 is UNIMPLEMENTED)
// and body, percent-encoded, as grpc-message; header is not sent.
// s.Status is status all the same.
func (s *Session) Respond(status int, header *h1.Header, body []byte) error {
	return s.r.respond(status, header, body)
}

func isHead(method []byte) bool { return string(method) == "HEAD" }

// asciiEqualFold compares a header name with a lower- or mixed-case ASCII
// constant without allocating.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x|0x20 != y|0x20 || (x|0x20 < 'a' || x|0x20 > 'z') && x != y {
			return false
		}
	}
	return true
}

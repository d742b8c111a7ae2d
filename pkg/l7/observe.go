package l7

import (
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"syscall"
)

// Observer watches a Server's connections and requests: metrics and
// access logs hang here. Its methods run on the serving goroutines, on
// the hot path of every request: each must return quickly, allocate
// nothing and never block.
type Observer interface {
	// ConnOpened and ConnClosed bracket every accepted client
	// connection.
	ConnOpened()
	ConnClosed()
	// Handshake reports each client TLS handshake: err is nil when it
	// succeeded, and state is then the connection's.
	Handshake(state *tls.ConnectionState, err error)
	// StreamOpened reports each HTTP/2 stream a client opened.
	StreamOpened()
	// RequestStarted is called once a request head has been read, before
	// any phase runs.
	RequestStarted(s *Session)
	// RequestDone is called once for every started request, when it
	// ended: after its response was sent, or abandoned. err is what ended
	// it (nil on success); FaultOf and EndReason classify it.
	RequestDone(s *Session, err error)
}

// Proto is the protocol a client spoke for a request.
type Proto uint8

// The client protocols.
const (
	HTTP10 Proto = iota
	HTTP11
	HTTP2
)

// String returns "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0".
func (p Proto) String() string {
	switch p {
	case HTTP10:
		return "HTTP/1.0"
	case HTTP2:
		return "HTTP/2.0"
	}
	return "HTTP/1.1"
}

// Upstream failure reasons, as UpstreamReason reports them: bounded
// label values for metrics.
const (
	ReasonRefused     = "refused"     // the connection was refused
	ReasonTimeout     = "timeout"     // connecting or an answer took too long
	ReasonReset       = "reset"       // the connection was reset or closed early
	ReasonTLS         = "tls"         // the TLS handshake failed
	ReasonProtocol    = "protocol"    // the upstream answered something that is not valid HTTP
	ReasonUnavailable = "unavailable" // no backend was healthy and enabled
	ReasonOther       = "other"       // any other failure to reach the upstream
)

// errUpstreamTLS marks a failed TLS handshake with an upstream.
var errUpstreamTLS = errors.New("tls handshake")

// UpstreamReason classifies an error that was the upstream's fault into
// one of the Reason constants; it returns "" for any other error.
func UpstreamReason(err error) string {
	if FaultOf(err) != UpstreamFault {
		return ""
	}
	switch {
	case errors.Is(err, ErrNoHealthyUpstream):
		return ReasonUnavailable
	case errors.Is(err, ErrUpstreamTimeout) || isTimeout(err):
		return ReasonTimeout
	case errors.Is(err, errUpstreamTLS):
		return ReasonTLS
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return ReasonRefused
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonReset
	case errors.Is(err, ErrUpstreamProtocol):
		return ReasonProtocol
	}
	return ReasonOther
}

// EndReason says in a word why a request ended when it did not end well,
// for access logs: "" on success; client_closed, client_timeout or
// client_protocol for a client's fault; upstream_ and an UpstreamReason
// for the upstream's; proxy_error for the proxy's own.
func EndReason(err error) string {
	switch FaultOf(err) {
	case NoFault:
		return ""
	case ClientFault:
		switch clientStatus(err) {
		case 0:
			return "client_closed"
		case 408:
			return "client_timeout"
		}
		return "client_protocol"
	case UpstreamFault:
		return upstreamEndReasons[UpstreamReason(err)]
	}
	return "proxy_error"
}

var upstreamEndReasons = map[string]string{
	ReasonRefused: "upstream_refused", ReasonTimeout: "upstream_timeout", ReasonReset: "upstream_reset",
	ReasonTLS: "upstream_tls", ReasonProtocol: "upstream_protocol", ReasonUnavailable: "upstream_unavailable",
	ReasonOther: "upstream_error",
}

// RequestIDHeader carries a request's id upstream and back to the client.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds a client's request id: longer ones are replaced.
const maxRequestID = 64

// assignRequestID gives the request an id: the client's X-Request-Id when
// it is a plausible one, else 16 random bytes in hex. It lives in the
// Session's buffer, since the head's bytes may move while the body is
// read.
func (s *Session) assignRequestID() {
	if v, ok := s.Req.Header.Get(RequestIDHeader); ok && validRequestID(v) {
		s.RequestID = append(s.idBuf[:0], v...)
		return
	}
	const hex = "0123456789abcdef"
	b := s.idBuf[:32]
	for half := 0; half < 2; half++ {
		x := rand.Uint64()
		for i := 0; i < 16; i++ {
			b[half*16+i] = hex[x&15]
			x >>= 4
		}
	}
	s.RequestID = b
}

// validRequestID accepts 1 to maxRequestID visible ASCII characters other
// than those that would need quoting in a log line or a header list.
func validRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > maxRequestID {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == ',' || c == ';' {
			return false
		}
	}
	return true
}

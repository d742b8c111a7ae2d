package accesslog

import (
	"net/netip"
	"time"
)

// Record is one finished request, as the access log sees it: the same for
// HTTP/1.x and HTTP/2, and free of any server type so that this package
// stands alone.
//
// The byte-slice fields may point into the caller's request buffers: a
// Record is read only during the call it is passed to (Format.Append,
// Writer.Log) and never kept, so the caller may reuse them at once.
type Record struct {
	// Service is the name of the service that took the request.
	Service string
	// Route is the name of the route that took the request; "" when
	// the service has no routes, or none matched.
	Route string
	// Start is when the request head was read. The time fields are
	// written in its location: local time for a time.Now().
	Start time.Time
	// Client is the address the request came from. An IPv4-mapped IPv6
	// address is logged as IPv4; the zero value is logged as missing.
	Client netip.AddrPort
	// Method, Host and Target are the request's method, host (Host
	// header or :authority) and target: path and query as received.
	Method, Host, Target []byte
	// Proto is the protocol version as "HTTP/1.0", "HTTP/1.1" or
	// "HTTP/2.0".
	Proto string
	// Status is the status sent to the client; 0 means none was sent.
	Status int
	// BytesReceived counts the request body bytes read from the client,
	// BytesSent the response body bytes sent to it (heads excluded, as
	// nginx's $body_bytes_sent).
	BytesReceived, BytesSent int64
	// Duration runs from the first byte of the request to the last byte
	// of the response.
	Duration time.Duration
	// Upstream is the address of the backend that served the request,
	// "" if none did.
	Upstream string
	// Connect is the time taken to connect to the upstream; 0 when a
	// pooled connection was reused.
	Connect time.Duration
	// FirstByte is the time until the upstream's response head arrived;
	// 0 if none did.
	FirstByte time.Duration
	// Attempts counts the upstream attempts made for the request.
	Attempts int
	// TLSVersion is "" on a plain connection, else the negotiated
	// version, for example "TLSv1.3".
	TLSVersion string
	// SNI is the server name the client asked for in its TLS handshake.
	SNI string
	// RequestID is the request's identifier (X-Request-Id).
	RequestID []byte
	// UserAgent and Referer are the request's User-Agent and Referer
	// headers.
	UserAgent, Referer []byte
	// Reason says why the request ended badly, for example
	// "client_closed" or "upstream_timeout"; "" when it ended well.
	Reason string
}

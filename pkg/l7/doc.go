// Package l7 is weir's HTTP reverse proxy.
//
// A Proxy decides, request by request, which upstream Peer serves it; the
// optional phase interfaces (RequestFilter, UpstreamRequestFilter,
// ResponseFilter, ResponseBodyFilter, FailToConnect, Logger, CtxMaker)
// let a program inspect
// and change the request and response on the way, in the spirit of
// Pingora's ProxyHttp trait. A Server runs a Proxy on listeners.
//
// HTTP/1.1 is served by weir's own codec (package h1), which parses into
// reused buffers so that a proxied request allocates nothing. HTTP/2 is
// served over TLS (ALPN h2) and as prior-knowledge h2c on plain
// listeners, by weir's own server: connections and streams live here,
// the codec (HPACK encoding, frame writing, request heads decoded into h1
// types) in package h2. Every request, whatever its protocol, runs the
// same phases.
//
// Upstream connections are pooled per Peer, keyed by address, TLS
// settings and PROXY protocol version (a connection that announced a
// client serves that client's connection only): HTTP/1.1 from a pool of idle connections, HTTP/2 (over TLS,
// or h2c with ALPNH2C) over one multiplexed connection per peer.
//
// gRPC passes through HTTP/2 both ways: trailers are relayed, streams
// flow as bytes arrive, grpc-timeout bounds the request, and the errors
// the proxy itself answers a gRPC request with are gRPC statuses (see
// GRPCStatus).
package l7

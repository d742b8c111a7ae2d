// Package l7 is weir's HTTP reverse proxy.
//
// A Proxy decides, request by request, which upstream Peer serves it; the
// optional phase interfaces (RequestFilter, UpstreamRequestFilter,
// ResponseFilter, FailToConnect, Logger, CtxMaker) let a program inspect
// and change the request and response on the way, in the spirit of
// Pingora's ProxyHttp trait. A Server runs a Proxy on listeners.
//
// HTTP/1.1 is served by weir's own codec (package h1), which parses into
// reused buffers so that a proxied request allocates nothing; upstream
// connections are pooled per Peer, keyed by address and TLS settings.
package l7

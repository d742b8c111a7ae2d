package l4

import "errors"

// Errors the proxies return or log. They are wrapped with the value at
// fault (the client, the backends tried, the socket), so test with
// errors.Is.
var (
	// ErrProxyClosed is returned by Serve after Shutdown or Close.
	ErrProxyClosed = errors.New("l4: proxy closed")
	// ErrNoSelector is returned by Serve when the proxy has no LB.
	ErrNoSelector = errors.New("l4: proxy has no load balancer (LB is nil)")
	// ErrNoBackend means no backend was usable for a connection or flow:
	// none is healthy and enabled, or every usable one was already tried.
	ErrNoBackend = errors.New("no usable backend")
	// ErrConnect means every connection attempt to a backend failed.
	ErrConnect = errors.New("cannot connect to backend")
	// ErrUnsupportedAddr means a packet connection reported a source
	// address that is not a UDP address, so no flow can be keyed on it.
	ErrUnsupportedAddr = errors.New("unsupported source address")
)

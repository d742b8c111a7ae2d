package l7

import "errors"

// Errors a Proxy or the proxy engine reports. Each maps to the status the
// client receives when no response head has been sent yet.
var (
	// ErrNoHealthyUpstream: no backend is healthy and enabled (503).
	ErrNoHealthyUpstream = errors.New("no healthy upstream")
	// ErrUpstreamTimeout: the upstream did not answer in time (504).
	ErrUpstreamTimeout = errors.New("upstream timed out")
	// ErrUpstreamConnect: every connection attempt failed (502).
	ErrUpstreamConnect = errors.New("cannot connect to upstream")
	// ErrUpstreamProtocol: the upstream answered something that is not
	// HTTP, or broke off mid-response (502).
	ErrUpstreamProtocol = errors.New("bad upstream response")
	// ErrDownstream: the client went away or sent a malformed body.
	ErrDownstream = errors.New("downstream error")
	// ErrFilter: a request phase of the Proxy failed (500): the fault is
	// the proxy's, not the upstream's.
	ErrFilter = errors.New("proxy filter failed")
)

// statusFor maps an error that ends a request to the status a client gets.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrNoHealthyUpstream):
		return 503
	case errors.Is(err, ErrUpstreamTimeout):
		return 504
	case errors.Is(err, ErrFilter):
		return 500
	default:
		return 502
	}
}

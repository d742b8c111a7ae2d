package l7

import (
	"errors"

	"github.com/weir-lb/weir/pkg/l7/h1"
)

// Errors a Proxy or the proxy engine reports. Each maps to the status the
// client receives when no response head has been sent yet, and to the
// side whose fault it was (FaultOf).
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
	// ErrDownstream: the client went away (no answer), was too slow
	// sending its body (408), or framed it wrongly (400, or the status
	// of the h1.Error it wraps). Always the client's fault.
	ErrDownstream = errors.New("downstream error")
	// ErrFilter: a request phase of the Proxy failed (500): the fault is
	// the proxy's, not the upstream's.
	ErrFilter = errors.New("proxy filter failed")
)

// Fault names the side whose fault ended a request. Logs, metrics and any
// health logic must tell them apart: a client that sends a broken body or
// leaves early says nothing about the backend.
type Fault uint8

const (
	// NoFault: the request succeeded.
	NoFault Fault = iota
	// ClientFault: the client sent something malformed, was too slow, or
	// went away (ErrDownstream).
	ClientFault
	// UpstreamFault: the backend could not be reached, timed out or
	// answered badly (ErrNoHealthyUpstream, ErrUpstream*).
	UpstreamFault
	// ProxyFault: a phase of the Proxy itself failed (a filter's error).
	ProxyFault
)

// String returns "none", "client", "upstream" or "proxy".
func (f Fault) String() string {
	switch f {
	case ClientFault:
		return "client"
	case UpstreamFault:
		return "upstream"
	case ProxyFault:
		return "proxy"
	}
	return "none"
}

// FaultOf tells whose fault err, an error that ended a request, was. An
// error that is both (a write to the client failing while relaying what
// the upstream sent wrongly) is the upstream's: its fault came first.
func FaultOf(err error) Fault {
	switch {
	case err == nil:
		return NoFault
	case errors.Is(err, ErrNoHealthyUpstream), errors.Is(err, ErrUpstreamTimeout),
		errors.Is(err, ErrUpstreamConnect), errors.Is(err, ErrUpstreamProtocol):
		return UpstreamFault
	case errors.Is(err, ErrDownstream):
		return ClientFault
	}
	return ProxyFault
}

// statusFor maps an error that ends a request to the status a client gets,
// 0 when it gets none: the client is gone.
func statusFor(err error) int {
	switch FaultOf(err) {
	case ClientFault:
		return clientStatus(err)
	case UpstreamFault:
		switch {
		case errors.Is(err, ErrNoHealthyUpstream):
			return 503
		case errors.Is(err, ErrUpstreamTimeout):
			return 504
		}
		return 502
	}
	if errors.Is(err, ErrFilter) {
		return 500
	}
	return 502 // a ResponseFilter's error, as documented
}

// clientStatus is the answer to a client's fault: the status its framing
// error calls for, 408 when it was too slow, and none when it left.
func clientStatus(err error) int {
	var he *h1.Error
	switch {
	case errors.As(err, &he):
		return he.Status
	case errors.Is(err, ErrRequestBodyTooLarge):
		return 413
	case isTimeout(err):
		return 408
	}
	return 0
}

package l7

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// abort lets the client's side end a request's upstream exchange early.
// An HTTP/2 client that resets its stream, or whose connection ends, no
// longer wants the answer; without this the stream's goroutine would sit
// in its upstream read until the upstream answered (a long poll: up to the
// read timeout), holding the upstream connection and the backend's work
// for nothing, and only then find the client gone. HTTP/2 streams have one
// each; an HTTP/1.1 request has none (r.abort is nil), since noticing that
// an HTTP/1.1 client left would need a read on its socket while the
// upstream is awaited.
//
// The stream's goroutine registers what to interrupt while it waits on the
// upstream; the connection's read loop fires the abort.
type abort struct {
	mu  sync.Mutex
	err error // why the exchange was aborted; nil until it is
	// What the exchange in progress waits on: the transport (TCP) of an
	// HTTP/1.1 upstream connection, or the cancel function of an HTTP/2
	// upstream request's context.
	conn   net.Conn
	cancel context.CancelCauseFunc
}

// reset readies a for the next request of a pooled stream.
func (a *abort) reset() {
	a.mu.Lock()
	a.err, a.conn, a.cancel = nil, nil, nil
	a.mu.Unlock()
}

// watch makes conn or cancel (whichever is not nil) what fire interrupts.
// It reports the abort's cause when it has already fired: the exchange
// must not start.
func (a *abort) watch(conn net.Conn, cancel context.CancelCauseFunc) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.conn, a.cancel = conn, cancel
	return nil
}

// unwatch ends the exchange's registration, so that a later fire only
// records its cause. It returns the cause if the abort has fired (nil
// otherwise): then the connection watched, if any, is closed.
func (a *abort) unwatch() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conn, a.cancel = nil, nil
	return a.err
}

// settle ends the exchange's registration and, if the abort fired, makes
// err (the exchange's failure, which the abort caused) the client's: the
// upstream is not to blame and the request is not to be retried.
func (a *abort) settle(err error) error {
	cause := a.unwatch()
	if cause == nil || err == nil || errors.Is(err, ErrDownstream) {
		return err
	}
	return fmt.Errorf("%w: %w (upstream exchange: %v)", ErrDownstream, cause, err)
}

// fire aborts the exchange in progress, if any, with err as the cause.
// Only the first call counts.
func (a *abort) fire(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return
	}
	a.err = err
	if a.conn != nil {
		// Closing, not a deadline in the past: the exchange may be about
		// to set a deadline of its own, which would undo it. The TCP
		// transport, not a TLS connection over it, whose Close may
		// block writing its close_notify, and fire runs with the HTTP/2
		// connection's lock held. Blocked reads and writes end at once
		// and every later one fails; the exchange then closes its
		// connection as after any failure.
		a.conn.Close()
	}
	if a.cancel != nil {
		a.cancel(err)
	}
}

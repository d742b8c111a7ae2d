package l7

import (
	"context"
	"errors"
	"fmt"

	"github.com/weir-lb/weir/pkg/lb"
)

// Errors of a pool whose backends have a max_connections limit (see
// SlotSelector). Both are 503s and the upstream side's fault
// (errors.Is(err, ErrNoHealthyUpstream) holds), but no backend failed:
// passive health is not told of them.
var (
	// ErrQueueFull: every backend the request may go to is at its limit
	// and the pool's wait queue is full.
	ErrQueueFull error = &queueError{lb.ErrQueueFull}
	// ErrQueueTimeout: the request waited the pool's queue timeout
	// without a backend's slot freeing for it.
	ErrQueueTimeout error = &queueError{lb.ErrQueueTimeout}
)

// queueError is a queue's refusal, which counts as ErrNoHealthyUpstream
// for status and fault, and as the lb error it wraps.
type queueError struct{ err error }

func (e *queueError) Error() string { return e.err.Error() }

// Is makes the error ErrNoHealthyUpstream (503, the upstream's side) too.
func (e *queueError) Is(target error) bool { return target == ErrNoHealthyUpstream }

func (e *queueError) Unwrap() error { return e.err }

// SlotSelector is a Selector whose backends each take a bounded number of
// requests at once (max_connections), queueing the rest; every
// *lb.LoadBalancer with Options.Limits is one. A request holds its
// backend's slot from selection until its exchange with the backend
// ends: its response relayed, its WebSocket tunnel closed, or its
// attempt failed. It is one upstream HTTP/1.1 connection, or one HTTP/2
// stream; idle pooled connections hold none.
type SlotSelector interface {
	// TakeSlot selects and takes a slot without waiting; nil and full
	// when every candidate is at its limit.
	TakeSlot(key []byte, maxIterations int, accept func(*lb.Backend) bool) (b *lb.Backend, full bool)
	// WaitSlot waits in the queue for a slot, until ctx is done.
	WaitSlot(ctx context.Context, key []byte, maxIterations int, accept func(*lb.Backend) bool) (*lb.Backend, error)
	// TakeSlotOf and WaitSlotOf take a slot of a backend the caller
	// chose (a sticky session's).
	TakeSlotOf(b *lb.Backend) bool
	WaitSlotOf(ctx context.Context, b *lb.Backend) error
}

var _ SlotSelector = (*lb.LoadBalancer[lb.Algorithm])(nil)

// slotPeer selects a backend and takes one of its slots, waiting in the
// queue when every candidate is full.
func (b *Balanced) slotPeer(s *Session, key []byte, maxIter int, accept func(*lb.Backend) bool) (*Peer, error) {
	be, full := b.Slots.TakeSlot(key, maxIter, accept)
	if be == nil && full {
		ctx, done := s.queueCtx()
		var err error
		be, err = b.Slots.WaitSlot(ctx, key, maxIter, accept)
		err = queueFailure(ctx, err)
		done()
		if err != nil && !errors.Is(err, lb.ErrNoBackend) {
			return nil, err
		}
	}
	if be == nil {
		if len(s.Tried) > 0 {
			return nil, fmt.Errorf("%w: every healthy backend was tried", ErrUpstreamConnect)
		}
		return nil, ErrNoHealthyUpstream
	}
	s.slot = be
	return b.peer(be), nil
}

// slotOf takes a slot of be, the backend a sticky cookie named, waiting
// for it when it is full: the session stays on its backend. It returns
// nil, and no error, when be became unusable meanwhile: the request is
// then balanced as if it had no cookie.
func (b *Balanced) slotOf(s *Session, be *lb.Backend) (*lb.Backend, error) {
	if !b.Slots.TakeSlotOf(be) {
		ctx, done := s.queueCtx()
		err := queueFailure(ctx, b.Slots.WaitSlotOf(ctx, be))
		done()
		if errors.Is(err, lb.ErrNoBackend) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	s.slot = be
	return be, nil
}

// queueCtx returns the context of a wait in the queue, which ends when
// the client resets its HTTP/2 stream or leaves, or the server closes,
// and the function ending the wait. Only a request that waits makes one.
// (An HTTP/1.1 client that leaves is not noticed while its request
// waits: that would need a read on its connection. Its wait ends with
// the queue timeout at the latest.)
func (s *Session) queueCtx() (context.Context, func()) {
	parent := context.Background()
	if s.r != nil && s.r.srv != nil {
		parent = s.r.srv.closedCtx()
	}
	ctx, cancel := context.WithCancelCause(parent)
	var a *abort
	if s.r != nil {
		a = s.r.abort
	}
	if err := a.watch(nil, cancel); err != nil {
		cancel(err)
	}
	return ctx, func() {
		a.unwatch()
		cancel(nil)
	}
}

// queueFailure turns the error that ended a wait in the queue into the
// request's: the queue's refusals are 503s; a wait the client ended is
// the client's fault; one the server's closing ended, a 503.
func queueFailure(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lb.ErrQueueFull):
		return ErrQueueFull
	case errors.Is(err, lb.ErrQueueTimeout):
		return ErrQueueTimeout
	case errors.Is(err, lb.ErrNoBackend):
		return err
	case errors.Is(context.Cause(ctx), errServerClosed):
		return fmt.Errorf("%w: the server closed while the request waited for a backend's slot", ErrNoHealthyUpstream)
	}
	return fmt.Errorf("%w: left while waiting for a backend's slot: %w", ErrDownstream, err)
}

// freeSlot gives back the backend slot the request holds, if any: once,
// however the attempt ended.
func (s *Session) freeSlot() {
	if s.slot != nil {
		s.slot.FreeSlot()
		s.slot = nil
	}
}

// errServerClosed is the cause of waits the server's Close ended.
var errServerClosed = errors.New("server closed")

// closedCtx returns the context that ends when the server cuts its
// connections.
func (s *Server) closedCtx() context.Context {
	if s.closed == nil {
		return context.Background()
	}
	return s.closed
}

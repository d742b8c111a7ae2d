package lb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the slot methods (WaitSlot, WaitSlotOf).
var (
	// ErrQueueFull: every backend the request may go to is at its
	// MaxConnections and the queue holds ConnLimits.QueueSize requests.
	ErrQueueFull = errors.New("every backend is at max_connections and the queue is full")
	// ErrQueueTimeout: the request waited ConnLimits.QueueTimeout in the
	// queue without a backend's slot freeing for it.
	ErrQueueTimeout = errors.New("every backend is at max_connections: timed out in the queue")
	// ErrNoBackend: no backend the request may go to is usable, so there
	// is nothing to wait for.
	ErrNoBackend = errors.New("no usable backend")
)

// ConnLimits bounds the requests in flight to each backend, as HAProxy's
// server maxconn does, and queues the requests that find every backend
// they may go to full, in one FIFO queue per LoadBalancer.
//
// A request holds a slot from its selection (TakeSlot, WaitSlot) until the
// caller frees it (Backend.FreeSlot). A freed slot goes straight to the
// first waiting request that may use that backend, so waiters are served
// in order and a new request cannot take a slot from under them.
//
// Non-hashing algorithms pass over a full backend to the next candidate
// and queue only when every candidate is full. Hashing algorithms (Keyed)
// and WaitSlotOf wait for their own backend's slot: affinity is kept, at
// the cost of waiting while another backend has room. A full primary
// still counts as usable: backups do not serve because primaries are
// full.
type ConnLimits struct {
	// MaxConnections is the limit of each backend whose
	// Backend.MaxConnections is 0; 0 means no limit for those.
	MaxConnections int
	// QueueSize bounds the requests waiting for a slot; at the bound a
	// request that finds every backend full fails at once with
	// ErrQueueFull. 0 means no queue.
	QueueSize int
	// QueueTimeout is how long a request waits in the queue before it
	// fails with ErrQueueTimeout; it must be positive when QueueSize is.
	QueueTimeout time.Duration
	// Waited, when not nil, is told of every request that waited in the
	// queue: how long, and the error that ended the wait (nil when it got
	// a slot). It runs on the waiting request's goroutine.
	Waited func(wait time.Duration, err error)
}

// QueueStatus is a LoadBalancer's wait queue, as reported by Queue.
type QueueStatus struct {
	// Length is how many requests wait now, at most Size.
	Length int
	Size   int
	// Timeout is ConnLimits.QueueTimeout.
	Timeout time.Duration
	// Timeouts and Full count the requests refused with ErrQueueTimeout
	// and ErrQueueFull; Waited counts every request that entered the
	// queue.
	Timeouts uint64
	Full     uint64
	Waited   uint64
}

// connQueue is the FIFO of requests waiting for a slot: an intrusive
// doubly linked list under mu. waiting mirrors its length for the
// lock-free check of FreeSlot.
type connQueue struct {
	cfg     ConnLimits
	waiting atomic.Int64
	// keyed says the algorithm maps keys to backends (isKeyed): its
	// selections wait for their key's backend.
	keyed bool

	mu         sync.Mutex
	head, tail *waiter
	n          int
	// try selects for w and takes a slot (the LoadBalancer's
	// selection), or reports whether w has something to wait for; call
	// with mu held.
	try func(w *waiter) (b *Backend, wait bool)
	// eligible reports whether a freed slot of b may go to waiters
	// that do not wait for one backend: b is usable, and not a backup
	// while some primary is.
	eligible func(b *Backend) bool

	timeouts, full, entered atomic.Uint64
	pool                    sync.Pool
}

// waiter is one request in the queue. Waiters are pooled: a request
// that waits allocates nothing once the pool is warm.
type waiter struct {
	prev, next *waiter
	queued     bool
	// got receives the Backend whose slot the waiter was given.
	got   chan *Backend
	timer *time.Timer
	// What the request may go to: one backend (target, fixed by
	// WaitSlotOf or the key's backend for a hashing selection), or what
	// the selection yields for key through accept.
	target  *backendState
	fixed   bool
	key     []byte
	maxIter int
	accept  func(*Backend) bool
}

// initLimits validates Options.Limits and makes the queue.
func (lb *LoadBalancer[A]) initLimits() error {
	l := lb.opts.Limits
	if l == nil {
		return nil
	}
	switch {
	case l.MaxConnections < 0:
		return fmt.Errorf("max connections %d must not be negative", l.MaxConnections)
	case l.QueueSize < 0:
		return fmt.Errorf("queue size %d must not be negative", l.QueueSize)
	case l.QueueSize > 0 && l.QueueTimeout <= 0:
		return fmt.Errorf("queue timeout %v must be positive with a queue of %d", l.QueueTimeout, l.QueueSize)
	}
	q := &connQueue{cfg: *l, keyed: isKeyed(lb.algo)}
	q.try = lb.tryFor
	q.eligible = lb.eligible
	q.pool.New = func() any { return &waiter{got: make(chan *Backend, 1)} }
	lb.waitq = q
	return nil
}

// setLimit publishes b's limit to its state. Call with mu held.
func (lb *LoadBalancer[A]) setLimit(b *Backend) error {
	if b.MaxConnections < 0 {
		return fmt.Errorf("max connections %d of %s must not be negative", b.MaxConnections, b.Addr)
	}
	if lb.waitq == nil {
		if b.MaxConnections > 0 {
			return fmt.Errorf("backend %s has max connections %d, but the pool has no Options.Limits", b.Addr, b.MaxConnections)
		}
		return nil
	}
	limit := b.MaxConnections
	if limit == 0 {
		limit = lb.waitq.cfg.MaxConnections
	}
	// A raised limit makes room: apply kicks the queue once the
	// snapshot is out.
	b.state.max.Store(int64(limit))
	return nil
}

// Limited reports whether the LoadBalancer bounds backends' requests in
// flight (Options.Limits): the proxy must then select with the slot
// methods and free each slot taken.
func (lb *LoadBalancer[A]) Limited() bool { return lb.waitq != nil }

// take takes one of the backend's slots, unless it has max of them taken.
// An unlimited backend's slots are counted too, so that FreeSlot need not
// know whether the limit changed meanwhile.
func (s *backendState) take() bool {
	limit := s.max.Load()
	if limit <= 0 {
		s.slots.Add(1)
		return true
	}
	for {
		n := s.slots.Load()
		if n >= limit {
			return false
		}
		if s.slots.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// FreeSlot gives back the slot a slot method took on b: to the first
// waiting request that may use it, else to the backend. Call it exactly
// once per slot taken, when the request no longer holds its upstream
// connection (or stream, or tunnel). It is a no-op on a Backend of a
// LoadBalancer without Options.Limits.
func (b *Backend) FreeSlot() {
	st := b.state
	if st == nil || st.queue == nil {
		return
	}
	q := st.queue
	if q.waiting.Load() > 0 && q.handOver(b) {
		return
	}
	st.slots.Add(-1)
	// A request may have queued between the check above and the
	// decrement, after failing to take this slot: it must not wait for
	// a slot that is free. A queued request adds itself to waiting
	// before it tries to select, so one of the two sees the other.
	if q.waiting.Load() > 0 {
		q.offer(b)
	}
}

// Slots returns how many slots of the backend requests hold; 0 without
// Options.Limits.
func (b *Backend) Slots() int64 {
	if b.state == nil {
		return 0
	}
	return b.state.slots.Load()
}

// TakeSlot selects like SelectWith and takes a slot on the backend it
// returns, which the caller must free (Backend.FreeSlot). A backend at its
// limit is passed over for the next candidate, except by a hashing
// algorithm (Keyed), which keeps each key on its backend. It returns nil
// and full == true when the request could wait (WaitSlot): candidates
// exist but are full; nil and full == false when none is usable. Without
// Options.Limits it is SelectWith, and takes no slot.
func (lb *LoadBalancer[A]) TakeSlot(key []byte, maxIterations int, accept func(*Backend) bool) (b *Backend, full bool) {
	if lb.waitq == nil {
		b, _ = lb.SelectWith(key, maxIterations, accept)
		return b, false
	}
	b, f := lb.selectSlot(key, maxIterations, accept)
	return b, f != nil
}

// selectSlot is SelectWith taking a slot; full is the first candidate
// found at its limit.
func (lb *LoadBalancer[A]) selectSlot(key []byte, maxIterations int, accept func(*Backend) bool) (b, full *Backend) {
	mode := pickSpill
	if lb.waitq.keyed {
		mode = pickKeyed
	}
	s := lb.snap.Load()
	if b, full = s.primary.pickSlot(s.backends, key, maxIterations, accept, mode); b != nil || full != nil {
		return b, full
	}
	if s.backup.sel == nil || s.primary.anyUsable() {
		return nil, nil
	}
	return s.backup.pickSlot(s.backends, key, maxIterations, accept, mode)
}

// TakeSlotOf takes a slot on b, a backend of this LoadBalancer's chosen
// by the caller (a sticky session's), if it has one free.
func (lb *LoadBalancer[A]) TakeSlotOf(b *Backend) bool {
	if lb.waitq == nil || b.state == nil {
		return true
	}
	return b.state.take()
}

// WaitSlot is TakeSlot that, when every candidate is full, waits in the
// queue for a slot: until one frees for the request (it then returns its
// backend), ConnLimits.QueueTimeout passes (ErrQueueTimeout), or ctx is
// done (its cause). It fails at once with ErrQueueFull when the queue is
// full, and with ErrNoBackend when no candidate is usable. Only a
// request that waits allocates (once the pool of waiters is warm, not
// even it); call TakeSlot first.
func (lb *LoadBalancer[A]) WaitSlot(ctx context.Context, key []byte, maxIterations int, accept func(*Backend) bool) (*Backend, error) {
	if lb.waitq == nil {
		if b, ok := lb.SelectWith(key, maxIterations, accept); ok {
			return b, nil
		}
		return nil, ErrNoBackend
	}
	w := lb.waitq.get()
	w.key, w.maxIter, w.accept = key, maxIterations, accept
	return lb.waitq.wait(ctx, w)
}

// WaitSlotOf is TakeSlotOf that waits in the queue for a slot of b, as
// WaitSlot does. It returns ErrNoBackend when b is unusable, or becomes
// so while the request waits: the caller may then choose another.
func (lb *LoadBalancer[A]) WaitSlotOf(ctx context.Context, b *Backend) error {
	if lb.waitq == nil || b.state == nil {
		return nil
	}
	w := lb.waitq.get()
	w.target, w.fixed = b.state, true
	_, err := lb.waitq.wait(ctx, w)
	return err
}

// Queue reports the wait queue; the zero QueueStatus without
// Options.Limits.
func (lb *LoadBalancer[A]) Queue() QueueStatus {
	q := lb.waitq
	if q == nil {
		return QueueStatus{}
	}
	return QueueStatus{Length: int(q.waiting.Load()), Size: q.cfg.QueueSize, Timeout: q.cfg.QueueTimeout,
		Timeouts: q.timeouts.Load(), Full: q.full.Load(), Waited: q.entered.Load()}
}

// tryFor selects for a waiter and takes a slot: on its target, or as
// WaitSlot's selection would. Keyed selections set the target to the
// key's backend, so that a slot of another is not handed to them.
func (lb *LoadBalancer[A]) tryFor(w *waiter) (*Backend, bool) {
	if w.fixed {
		if !w.target.usable.Load() {
			return nil, false // nothing to wait for
		}
		if !w.target.take() {
			return nil, true
		}
		if b := lb.backendOf(w.target); b != nil {
			return b, false
		}
		w.target.slots.Add(-1) // removed from the pool
		return nil, false
	}
	b, full := lb.selectSlot(w.key, w.maxIter, w.accept)
	w.target = nil
	if full != nil && lb.waitq.keyed {
		w.target = full.state
	}
	return b, full != nil
}

// backendOf returns the current snapshot's Backend for st, or nil.
func (lb *LoadBalancer[A]) backendOf(st *backendState) *Backend {
	s := lb.snap.Load()
	for i := range s.backends {
		if s.backends[i].state == st {
			return &s.backends[i]
		}
	}
	return nil
}

// eligible reports whether waiters that do not wait for one backend may
// be given a slot of b.
func (lb *LoadBalancer[A]) eligible(b *Backend) bool {
	if !b.state.usable.Load() {
		return false
	}
	if !b.Backup {
		return true
	}
	return !lb.snap.Load().primary.anyUsable()
}

// kickQueue gives free slots to waiting requests after a change that may
// have made room: a backend joined, became usable, or had its limit
// raised.
func (lb *LoadBalancer[A]) kickQueue() {
	q := lb.waitq
	if q == nil || q.waiting.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for w := q.head; w != nil; {
		next := w.next
		if b, _ := q.try(w); b != nil {
			q.grant(w, b)
		}
		w = next
	}
}

// lostQueue frees the requests waiting for st's slot, which became
// unusable: one waiting for it by name (WaitSlotOf) gets ErrNoBackend,
// one of a hashing selection selects again (the next backend of its
// ring) or waits for the new one.
func (lb *LoadBalancer[A]) lostQueue(st *backendState) {
	q := lb.waitq
	if q == nil || q.waiting.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for w := q.head; w != nil; {
		next := w.next
		switch {
		case w.target != st:
		case w.fixed:
			q.grant(w, nil)
		default:
			if b, _ := q.try(w); b != nil {
				q.grant(w, b)
			}
		}
		w = next
	}
}

func (q *connQueue) get() *waiter {
	w := q.pool.Get().(*waiter)
	w.target, w.fixed, w.key, w.maxIter, w.accept = nil, false, nil, 0, nil
	return w
}

func (q *connQueue) put(w *waiter) {
	w.target, w.key, w.accept = nil, nil, nil
	q.pool.Put(w)
}

// wait queues w, tries once more to select (a slot may have freed since
// the caller's try), and waits for a slot, the timeout or ctx.
func (q *connQueue) wait(ctx context.Context, w *waiter) (*Backend, error) {
	defer q.put(w)
	q.mu.Lock()
	if q.n >= q.cfg.QueueSize {
		q.mu.Unlock()
		q.full.Add(1)
		return nil, ErrQueueFull
	}
	q.push(w)
	b, wait := q.try(w)
	if b != nil || !wait {
		q.remove(w)
		q.mu.Unlock()
		if b == nil {
			return nil, ErrNoBackend // no usable candidate to wait for
		}
		return b, nil
	}
	q.mu.Unlock()
	q.entered.Add(1)
	start := time.Now()
	if w.timer == nil {
		w.timer = time.NewTimer(q.cfg.QueueTimeout)
	} else {
		w.timer.Reset(q.cfg.QueueTimeout)
	}
	defer w.timer.Stop()
	var err error
	select {
	case b := <-w.got:
		if b == nil {
			err := ErrNoBackend // its backend became unusable
			q.waited(start, err)
			return nil, err
		}
		q.waited(start, nil)
		return b, nil
	case <-w.timer.C:
		err = ErrQueueTimeout
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	q.mu.Lock()
	queued := w.queued
	if queued {
		q.remove(w)
	}
	q.mu.Unlock()
	if !queued {
		// A slot was given as the wait ended: it is the request's.
		b := <-w.got
		if b == nil {
			err = ErrNoBackend
		} else if err == ErrQueueTimeout {
			q.waited(start, nil)
			return b, nil
		}
		if b != nil {
			b.FreeSlot()
		}
	}
	if err == ErrQueueTimeout {
		q.timeouts.Add(1)
	}
	q.waited(start, err)
	return nil, err
}

func (q *connQueue) waited(start time.Time, err error) {
	if q.cfg.Waited != nil {
		q.cfg.Waited(time.Since(start), err)
	}
}

// handOver gives b's slot, being freed, to the first waiter that may use
// it, and reports whether one took it: the slot then stays taken.
func (q *connQueue) handOver(b *Backend) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := b.state
	if limit := st.max.Load(); limit > 0 && st.slots.Load() > limit {
		return false // the limit was lowered: this slot is one too many
	}
	w := q.first(b)
	if w == nil {
		return false
	}
	q.grant(w, b)
	return true
}

// offer takes a slot of b, just freed, for the first waiter that may use
// it, if it is still free.
func (q *connQueue) offer(b *Backend) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if w := q.first(b); w != nil && b.state.take() {
		q.grant(w, b)
	}
}

// first returns the first waiter that may be given a slot of b. Call
// with mu held.
func (q *connQueue) first(b *Backend) *waiter {
	var general bool
	for w := q.head; w != nil; w = w.next {
		if w.target != nil {
			if w.target == b.state && b.state.usable.Load() {
				return w
			}
			continue
		}
		if !general {
			if !q.eligible(b) {
				continue // only waiters for b itself may have it
			}
			general = true
		}
		if w.accept == nil || w.accept(b) {
			return w
		}
	}
	return nil
}

// grant gives w the slot of b it took or was handed, or nil: the backend
// it waits for by name is gone. Call with mu held.
func (q *connQueue) grant(w *waiter, b *Backend) {
	q.remove(w)
	w.got <- b
}

func (q *connQueue) push(w *waiter) {
	w.prev, w.next, w.queued = q.tail, nil, true
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
	q.waiting.Add(1)
}

func (q *connQueue) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	q.n--
	q.waiting.Add(-1)
}

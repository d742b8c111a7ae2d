package limit

import (
	"context"
	"fmt"
)

// Gate bounds a number of things in use at once, such as a listener's
// connections (HAProxy's maxconn). Unlike a limit that accepts a
// connection and then closes it, a Gate is meant to be waited on before
// Accept: an accept loop at the limit stops calling Accept, new
// connections wait in the kernel's listen queue (their clients see a slow
// connect, not a reset), and the loop resumes as soon as one closes:
//
//	for {
//		if err := gate.Acquire(ctx); err != nil {
//			return err // ctx is done: the server is shutting down
//		}
//		conn, err := ln.Accept()
//		if err != nil {
//			gate.Release()
//			... // back off or return, as without a gate
//		}
//		go func() {
//			defer gate.Release()
//			serve(conn)
//		}()
//	}
//
// That order suits one accept loop per Gate. Loops sharing one (the
// SO_REUSEPORT sockets of a listener) must not hold a slot while they
// wait in Accept, or an idle socket's loop starves a busy one's: they
// wait for a free slot (Acquire, then Release), Accept, and then take a
// slot; the README shows it.
//
// A Gate is a semaphore over a buffered channel: Acquire, TryAcquire and
// Release allocate nothing, and a Gate may be shared by several accept
// loops (one limit across listeners). Its limit is fixed; a new limit
// takes a new Gate.
type Gate struct {
	slots chan struct{}
}

// NewGate returns a Gate that lets max holders in at once.
func NewGate(max int) (*Gate, error) {
	if max < 1 {
		return nil, fmt.Errorf("limit: gate limit %d is less than 1 (nothing could pass)", max)
	}
	return &Gate{slots: make(chan struct{}, max)}, nil
}

// Acquire takes a slot, waiting while all are taken. It returns ctx's
// error, having taken nothing, if ctx is done first.
func (g *Gate) Acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryAcquire takes a slot if one is free and reports whether it did.
func (g *Gate) TryAcquire() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release gives a slot back, letting one waiter in. It panics when no
// slot is taken: a Release without its Acquire would raise the limit.
func (g *Gate) Release() {
	select {
	case <-g.slots:
	default:
		panic("limit: Gate.Release without a matching Acquire")
	}
}

// InUse returns the number of slots taken.
func (g *Gate) InUse() int { return len(g.slots) }

// Max returns the gate's limit.
func (g *Gate) Max() int { return cap(g.slots) }

package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

// Inheritance is the new process's side of an upgrade: the sockets it
// received, checked against the manifest, until it adopts them, and the
// connection on which it reports ready (or aborts).
//
// The new process adopts what its configuration still uses with Listener
// and PacketConn, finishes starting, then calls Ready; on any failure it
// calls Abort instead and exits, and the old process keeps serving.
// Close releases the sockets nobody adopted.
type Inheritance struct {
	ctl     control
	release func() // unlocks the upgrade lock
	peerPID int

	mu      sync.Mutex
	phase   phase
	closed  bool
	sockets []Socket
	byKey   map[key]int
	// state is what the old process handed over with OfferState; set
	// once before the Inheritance is returned, then only read.
	state []byte
}

func newInheritance(ctl control, release func(), peerPID int, sockets []Socket) *Inheritance {
	in := &Inheritance{ctl: ctl, release: release, peerPID: peerPID, sockets: sockets, byKey: make(map[key]int, len(sockets))}
	for i := range sockets {
		in.byKey[sockets[i].key()] = i
	}
	return in
}

// PeerPID is the old process's pid, as the kernel reported it.
func (in *Inheritance) PeerPID() int { return in.peerPID }

// State returns the state the old process handed over with OfferState
// (at most MaxStateBytes); empty when it used Offer or speaks manifest
// version 1. The caller must not modify it.
func (in *Inheritance) State() []byte { return in.state }

// Sockets lists every inherited socket in manifest order. The Files stay
// owned by the Inheritance; File is nil once a socket was adopted.
func (in *Inheritance) Sockets() []Socket {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Socket(nil), in.sockets...)
}

// Listener adopts the inherited TCP listener of service's listener index,
// configured as addr, member member of its SO_REUSEPORT group (0 for a
// single socket), as a net.Listener; the kernel socket, its accept
// queue included, is the one the old process listened on. It returns an
// error wrapping ErrNotInherited when there is no such TCP socket (the
// configuration changed, or it was adopted already): open a new one.
func (in *Inheritance) Listener(service, addr string, index, member int) (net.Listener, error) {
	var ln net.Listener
	err := in.adopt(key{service, addr, index, member}, NetworkTCP, func(f *os.File) (err error) {
		ln, err = net.FileListener(f)
		return err
	})
	return ln, err
}

// PacketConn adopts the inherited UDP socket of service's listener index,
// configured as addr, as a net.PacketConn. Errors are those of Listener.
func (in *Inheritance) PacketConn(service, addr string, index int) (net.PacketConn, error) {
	var pc net.PacketConn
	err := in.adopt(key{service, addr, index, 0}, NetworkUDP, func(f *os.File) (err error) {
		pc, err = net.FilePacketConn(f)
		return err
	})
	return pc, err
}

// adopt hands the socket under k to wrap, which duplicates it into a Go
// object, then closes the Inheritance's descriptor. A socket wrap fails
// on stays inherited.
func (in *Inheritance) adopt(k key, network string, wrap func(*os.File) error) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return fmt.Errorf("upgrade: adopt %s: %w: the inheritance was closed or aborted", k, ErrClosed)
	}
	i, ok := in.byKey[k]
	if !ok {
		return fmt.Errorf("upgrade: %w: the old process handed over no socket for %s", ErrNotInherited, k)
	}
	s := &in.sockets[i]
	switch {
	case s.File == nil:
		return fmt.Errorf("upgrade: %w: %s was adopted already", ErrNotInherited, k)
	case s.Network != network:
		return fmt.Errorf("upgrade: %w: %s was inherited as a %s socket, not %s", ErrNotInherited, k, s.Network, network)
	}
	if err := wrap(s.File); err != nil {
		return fmt.Errorf("upgrade: adopt %s: %w", k, err)
	}
	s.File.Close()
	s.File = nil
	return nil
}

// Ready tells the old process that the new one serves, and waits within
// ctx (DefaultTimeout if it has no deadline) for its answer, which comes
// at once from an old process blocked in Wait. nil means the old process
// stops accepting and drains. ErrCanceled means it gave up first and
// keeps serving: the new process must close what it adopted and exit.
// Any other error (ErrPeerGone: the old process died; or ctx ended
// first) means the old process may no longer serve: carry on serving,
// since exiting could leave nobody listening. Ready may be called once;
// it ends the upgrade (a new one may start) and leaves the sockets not
// adopted to Close.
func (in *Inheritance) Ready(ctx context.Context) error {
	if !in.enter() {
		return fmt.Errorf("%w: Ready was already called, or the inheritance was aborted or closed", ErrClosed)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	sendErr := in.ctl.send(ctx, message{Type: msgReady})
	// Even when sending failed, read: a canceling old process says so
	// before it hangs up.
	m, err := in.ctl.recv(ctx)
	if !in.finish() {
		return fmt.Errorf("%w: the inheritance was aborted or closed while waiting for the old process (pid %d)", ErrClosed, in.peerPID)
	}
	defer in.endUpgrade()
	switch {
	case err != nil && sendErr != nil && !errors.Is(sendErr, ErrPeerGone):
		return fmt.Errorf("upgrade: tell the old process (pid %d) the new one is ready: %w", in.peerPID, sendErr)
	case err != nil:
		return fmt.Errorf("upgrade: no answer from the old process (pid %d) to ready: %w", in.peerPID, err)
	case m.Type == msgAck:
		return nil
	case m.Type == msgCancel:
		return fmt.Errorf("upgrade: %w (pid %d): %s", ErrCanceled, in.peerPID, m.Reason)
	default:
		return fmt.Errorf("upgrade: %w: the old process (pid %d) answered ready with %q", ErrProtocol, in.peerPID, m.Type)
	}
}

// Abort tells the old process that the new one gives up, and why; the
// old process keeps serving and logs reason. It closes the sockets not
// adopted and ends the upgrade. Without a call to Abort, a new process
// that dies has the same effect: the old one sees the connection close.
func (in *Inheritance) Abort(reason error) {
	if in.finish() {
		text := "the new process aborted without saying why"
		if reason != nil {
			text = reason.Error()
		}
		sendLastWords(in.ctl, reasonMessage(msgAbort, text))
	}
	in.shut()
}

// Close ends the inheritance: if Ready or Abort was not called, it aborts
// ("closed without reporting ready"); then it closes every socket not
// adopted. Adopted listeners belong to their callers. Close is safe to
// call more than once.
func (in *Inheritance) Close() error {
	if in.finish() {
		sendLastWords(in.ctl, reasonMessage(msgAbort, "the new process closed its inheritance without reporting ready"))
	}
	in.shut()
	return nil
}

// shut ends the upgrade and closes the sockets nobody adopted.
func (in *Inheritance) shut() {
	in.endUpgrade()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closed = true
	closeSockets(in.sockets)
}

// endUpgrade hangs up and releases the upgrade lock; idempotent.
func (in *Inheritance) endUpgrade() {
	in.ctl.close()
	in.mu.Lock()
	release := in.release
	in.release = nil
	in.mu.Unlock()
	if release != nil {
		release()
	}
}

func (in *Inheritance) enter() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.phase != phaseOpen {
		return false
	}
	in.phase = phaseWaiting
	return true
}

func (in *Inheritance) finish() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.phase == phaseFinished {
		return false
	}
	in.phase = phaseFinished
	return true
}

// closeSockets closes every descriptor in sockets and forgets it.
func closeSockets(sockets []Socket) {
	for i := range sockets {
		if sockets[i].File != nil {
			sockets[i].File.Close()
			sockets[i].File = nil
		}
	}
}

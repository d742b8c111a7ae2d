package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
)

// Handoff is the old process's side of an upgrade, once Offer has
// delivered the sockets. Its Wait says whether the old process stops
// accepting (the new one is serving) or carries on as if nothing
// happened.
type Handoff struct {
	ctl     control
	peerPID int

	mu    sync.Mutex
	phase phase
}

func newHandoff(ctl control, peerPID int) *Handoff {
	return &Handoff{ctl: ctl, peerPID: peerPID}
}

// PeerPID is the new process's pid, as the kernel reported it.
func (h *Handoff) PeerPID() int { return h.peerPID }

// Wait waits, within ctx (DefaultTimeout if it has no deadline), for the
// new process's verdict. nil means the new process is ready and has been
// told to go ahead: the old process stops accepting and drains. Any
// error means the old process keeps serving: the new process aborted
// (ErrAborted, with its reason), exited (ErrPeerGone), or did not answer
// in time (ctx's error; the new process is then told to exit with
// ErrCanceled). Wait closes the connection; it may be called once.
func (h *Handoff) Wait(ctx context.Context) error {
	if !h.enter() {
		return fmt.Errorf("%w: Wait was already called, or the handoff closed", ErrClosed)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	m, err := h.ctl.recv(ctx)
	if !h.finish() {
		return fmt.Errorf("%w: the handoff was closed while waiting for the new process (pid %d)", ErrClosed, h.peerPID)
	}
	defer h.ctl.close()
	if err != nil {
		return h.failed(ctx, err)
	}
	switch m.Type {
	case msgReady:
		// The old process has decided; its grace period no longer
		// applies, and ending the send on it would leave the new
		// process unsure.
		ackCtx, cancelAck := context.WithTimeout(context.WithoutCancel(ctx), lastWordsTimeout)
		defer cancelAck()
		if err := h.ctl.send(ackCtx, message{Type: msgAck}); err != nil {
			return fmt.Errorf("upgrade: the new process (pid %d) reported ready but could not be told to go ahead, so the old process keeps serving: %w", h.peerPID, err)
		}
		return nil
	case msgAbort:
		return fmt.Errorf("upgrade: %w (pid %d): %s", ErrAborted, h.peerPID, m.Reason)
	default:
		sendLastWords(h.ctl, reasonMessage(msgCancel, fmt.Sprintf("the old process expected ready or abort, not %q", m.Type)))
		return fmt.Errorf("upgrade: %w: the new process (pid %d) sent %q instead of ready or abort", ErrProtocol, h.peerPID, m.Type)
	}
}

// failed explains a Wait that got no verdict. When the old process gave
// up (ctx), it tells the new one, which must then exit.
func (h *Handoff) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ErrPeerGone) {
		sendLastWords(h.ctl, reasonMessage(msgCancel, fmt.Sprintf("the old process (pid %d) stopped waiting for ready: %v", os.Getpid(), context.Cause(ctx))))
		return fmt.Errorf("upgrade: the new process (pid %d) did not report ready in time, so the old process keeps serving: %w", h.peerPID, err)
	}
	return fmt.Errorf("upgrade: the new process (pid %d) did not report ready, so the old process keeps serving: %w", h.peerPID, err)
}

// Close abandons the handoff if Wait has not finished: the new process
// is told to exit (ErrCanceled) and the old one keeps serving. It is
// safe to call at any time and more than once.
func (h *Handoff) Close() error {
	if h.finish() {
		sendLastWords(h.ctl, reasonMessage(msgCancel, fmt.Sprintf("the old process (pid %d) abandoned the upgrade", os.Getpid())))
	}
	h.ctl.close()
	return nil
}

// enter starts the exchange; false if it already started or finished.
func (h *Handoff) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.phase != phaseOpen {
		return false
	}
	h.phase = phaseWaiting
	return true
}

// finish ends the exchange; false if someone else already ended it.
func (h *Handoff) finish() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.phase == phaseFinished {
		return false
	}
	h.phase = phaseFinished
	return true
}

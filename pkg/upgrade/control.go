package upgrade

import (
	"context"
	"time"
)

// DefaultTimeout bounds every step of the handoff whose context carries
// no deadline, so that no side waits forever for a peer that is wedged.
// weir passes its grace_period_seconds instead.
const DefaultTimeout = 10 * time.Second

// lastWordsTimeout bounds the best-effort record (abort, cancel) a side
// sends while giving up: the peer may be gone, and giving up must not
// hang on it.
const lastWordsTimeout = time.Second

// control is the upgrade connection as the portable half of the package
// sees it: one record at a time, each bounded by a context. Errors are
// already wrapped with ErrPeerGone when the peer has hung up.
type control interface {
	send(ctx context.Context, m message) error
	recv(ctx context.Context) (message, error)
	close()
}

// withDefaultTimeout applies DefaultTimeout to a context with no deadline.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// sendLastWords tells the peer why this side gives up, if it still
// listens; its failure changes nothing, so it is not reported.
func sendLastWords(c control, m message) {
	ctx, cancel := context.WithTimeout(context.Background(), lastWordsTimeout)
	defer cancel()
	_ = c.send(ctx, m)
}

// phase is where a Handoff or an Inheritance stands: one side's exchange
// happens at most once, and closing it early speaks for it.
type phase int

const (
	phaseOpen     phase = iota // manifest delivered; nothing said since
	phaseWaiting               // Wait or Ready is exchanging its records
	phaseFinished              // the exchange is over, or was cut short
)

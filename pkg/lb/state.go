package lb

import (
	"sync/atomic"
	"time"
)

// backendState is the mutable state of one backend address. The
// LoadBalancer keeps one per address for as long as the address is
// discovered, and points every snapshot's Backend at it, so health, drain
// and in-flight counts survive rebuilds and weight changes.
//
// usable and inflight are read on the selection path without locks; every
// other field is guarded by the owning LoadBalancer's mutex.
type backendState struct {
	inflight inflightCounter

	// usable is healthy && enabled: the one word Select reads.
	usable atomic.Bool

	healthy       bool
	enabledByDisc bool // the Discovery's view
	enabledByUser bool // LoadBalancer.SetEnabled's view
	drained       bool // LoadBalancer.SetDrained's sticky override
	weight        int  // the weight last published, to report a change
	lastCheck     time.Time
	lastErr       error
	lastLatency   time.Duration
	lastOK        bool
	consecutive   int

	// ext is Options.Attach's value for this address, set once before
	// the state is published.
	ext any
}

func newBackendState(healthy bool) *backendState {
	s := &backendState{healthy: healthy, enabledByDisc: true, enabledByUser: true, lastOK: healthy}
	s.publish()
	return s
}

func (s *backendState) enabled() bool { return s.enabledByDisc && s.enabledByUser && !s.drained }

// publish recomputes the lock-free usable flag after a change.
func (s *backendState) publish() { s.usable.Store(s.healthy && s.enabled()) }

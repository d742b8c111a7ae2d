package lb

import (
	"sync"
	"sync/atomic"
	"time"
)

// backendState is the mutable state of one backend address. The
// LoadBalancer keeps one per address for as long as the address is
// discovered, and points every snapshot's Backend at it, so health, drain
// and in-flight counts survive rebuilds and weight changes.
type backendState struct {
	inflight inflightCounter

	// usable is healthy && enabled: the one word Select reads.
	usable atomic.Bool

	mu            sync.Mutex
	healthy       bool
	enabledByDisc bool // Discovery's view
	enabledByUser bool // LoadBalancer.SetEnabled's view
	lastCheck     time.Time
	lastErr       error
	lastLatency   time.Duration
	lastOK        bool
	consecutive   int
}

func newBackendState(healthy bool) *backendState {
	s := &backendState{healthy: healthy, enabledByDisc: true, enabledByUser: true, lastOK: healthy}
	s.publish()
	return s
}

// enabled reports the combined enablement. Call with mu held.
func (s *backendState) enabled() bool { return s.enabledByDisc && s.enabledByUser }

// publish recomputes usable. Call with mu held (or before sharing).
func (s *backendState) publish() { s.usable.Store(s.healthy && s.enabled()) }

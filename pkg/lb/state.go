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
	// fails are Report's consecutive failure counts; passive is the
	// LoadBalancer's outlier detection, nil without one.
	fails   failureCounters
	passive *passive

	// usable is healthy && enabled && !ejected: the one word Select
	// reads.
	usable atomic.Bool

	healthy       bool
	enabledByDisc bool // the Discovery's view
	enabledByUser bool // LoadBalancer.SetEnabled's view
	drained       bool // LoadBalancer.SetDrained's sticky override
	weight        int  // the weight last published, to report a change
	backup        bool // the role last published, to report a change
	lastCheck     time.Time
	lastErr       error
	lastLatency   time.Duration
	lastOK        bool
	consecutive   int

	// Passive health (outlier.go): ejected until ejectedUntil, by the
	// ejectSeq-th ejection, ended early by ejectTimer's stop; streak is
	// the multiplier of the next ejection's length, ejections the total.
	ejected      bool
	ejectedUntil time.Time
	ejectErr     error
	ejectSeq     uint64
	ejectTimer   Timer
	streak       int
	ejections    int
	returnedAt   time.Time

	// rampStart is when slow start began ramping the backend's weight
	// (slowstart.go); zero when it is not ramping.
	rampStart time.Time

	// ext is Options.Attach's value for this address, set once before
	// the state is published.
	ext any

	// Connection limits (slots.go): slots counts the requests holding
	// one of the backend's max slots (0: unlimited); queue is the
	// LoadBalancer's wait queue, nil without Options.Limits.
	slots inflightCounter
	max   atomic.Int64
	queue *connQueue
}

func newBackendState(healthy bool) *backendState {
	s := &backendState{healthy: healthy, enabledByDisc: true, enabledByUser: true, lastOK: healthy}
	s.publish()
	return s
}

func (s *backendState) enabled() bool { return s.enabledByDisc && s.enabledByUser && !s.drained }

// up is the backend's health as selection and observers see it: its
// active checks' verdict, and not ejected by passive health.
func (s *backendState) up() bool { return s.healthy && !s.ejected }

// publish recomputes the lock-free usable flag after a change and reports
// whether the backend just became usable.
func (s *backendState) publish() (became bool) {
	u := s.up() && s.enabled()
	return s.usable.Swap(u) != u && u
}

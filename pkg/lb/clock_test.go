package lb

import "time"

// newFakeClock is the tests' ManualClock, at a fixed start.
func newFakeClock() *ManualClock {
	return NewManualClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

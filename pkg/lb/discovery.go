package lb

import "context"

// Set is what a Discovery reports: the backends, in the order the operator
// gave them, and which of them are disabled.
type Set struct {
	Backends []Backend
	// Disabled holds the addresses that stay in the pool, keeping their
	// health state, but receive no new traffic (drained).
	Disabled map[string]bool
}

// Discovery finds the backends of a service.
//
// Discover is called every update interval. On error the LoadBalancer
// keeps the last good set; a Discovery must therefore return an error, not
// an empty set, when it cannot tell.
type Discovery interface {
	Discover(ctx context.Context) (Set, error)
}

// Notifier is implemented by a Discovery that knows when its set changes
// (a static list edited at runtime). The LoadBalancer's runner updates as
// soon as the channel receives, instead of waiting for the next interval.
type Notifier interface {
	Changed() <-chan struct{}
}

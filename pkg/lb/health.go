package lb

import (
	"context"
	"time"
)

// HealthCheck probes one backend. Check returns nil when the backend is
// healthy and an error saying why not otherwise. It must honour ctx,
// which carries the check's deadline.
type HealthCheck interface {
	Check(ctx context.Context, b *Backend) error
}

// InitialHealth is the health a backend has before its first check.
type InitialHealth int

const (
	// InitiallyHealthy serves a new backend until a check proves it dead.
	InitiallyHealthy InitialHealth = iota
	// InitiallyUnhealthy serves a new backend only once a check passes.
	InitiallyUnhealthy
)

// EventKind says what an Event reports.
type EventKind int

const (
	// Added: the backend joined the pool; Healthy and Enabled are its
	// initial state.
	Added EventKind = iota
	// HealthChanged: the backend's health changed: its checks crossed a
	// consecutive threshold, or passive health ejected it or let it
	// back (Event.Ejected tells which).
	HealthChanged
	// EnabledChanged: the backend was enabled or disabled (drained).
	EnabledChanged
	// Removed: the backend left the pool.
	Removed
	// WeightChanged: the backend's weight changed, by discovery or by an
	// operator's override (LoadBalancer.SetWeight); Backend.Weight is the
	// new one.
	WeightChanged
	// BackupChanged: discovery turned a primary backend into a backup or
	// a backup into a primary; Backend.Backup is the new role.
	BackupChanged
)

func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case HealthChanged:
		return "health"
	case EnabledChanged:
		return "enabled"
	case Removed:
		return "removed"
	case WeightChanged:
		return "weight"
	case BackupChanged:
		return "backup"
	}
	return "unknown"
}

// Event is a change in a backend's state, as told to Observers.
type Event struct {
	Kind    EventKind
	Backend Backend
	// Healthy is the backend's health as selection sees it: its active
	// checks' verdict, and false while passive health ejects it. A
	// backend serves when Healthy and Enabled.
	Healthy bool
	Enabled bool
	// Ejected tells that passive health (Options.Outlier) keeps the
	// backend out; HealthChanged reports an ejection and its end.
	Ejected bool
	// Reason says why the backend turned unhealthy: the last check error,
	// or an error wrapping ErrEjected.
	Reason error
	At     time.Time
}

// Observer is told of every Event, in order, from one goroutine at a time.
// It must not block for long: the health checker waits for it.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// Status is a backend's state as reported by LoadBalancer.Status.
type Status struct {
	Backend Backend
	Healthy bool
	// Enabled is false while the Discovery, SetEnabled or SetDrained
	// keeps the backend out of selection; Drained is true while
	// SetDrained does.
	Enabled     bool
	Drained     bool
	InFlight    int64
	LastCheck   time.Time
	LastError   error
	LastLatency time.Duration
	// Consecutive counts the checks in a row with the same outcome as the
	// last one.
	Consecutive int
	// Ejected is true while passive health keeps the backend out, until
	// EjectedUntil at the latest; Ejections counts its ejections since it
	// joined. Healthy stays the active checks' verdict: a backend serves
	// when Healthy && Enabled && !Ejected.
	Ejected      bool
	EjectedUntil time.Time
	Ejections    int
	// MaxConnections is the backend's limit of requests in flight with
	// Options.Limits (0: none), and Slots how many hold one now.
	MaxConnections int64
	Slots          int64
}

package lb

// Cursor is the state of one selection in progress. A Selector decides what
// its fields mean (a ring position, a round-robin sequence number, a random
// state); the LoadBalancer only carries it from one Next call to the next.
// It is a value so that a selection allocates nothing.
type Cursor struct {
	// Hash is the key's hash, or a random seed for keyless algorithms.
	Hash uint64
	// Pos is the position in the selector's candidate sequence.
	Pos uint64
	// Step counts the candidates returned so far.
	Step int
}

// Selector yields candidate backends for a key, most preferred first. It is
// built by an Algorithm for one backend list and never changes afterwards,
// so it must be safe for concurrent use without locks on the read path.
//
// A Selector returns indexes into the list it was built from. It should
// yield every backend within a bounded number of steps and then report
// ok == false, so that a caller skipping unhealthy backends always ends.
type Selector interface {
	// Start begins a selection for key. Keyless algorithms ignore key.
	Start(key []byte) Cursor
	// Next returns the index of the next candidate and the advanced cursor,
	// or ok == false when the selector has no more candidates.
	Next(c Cursor) (index int, next Cursor, ok bool)
}

// Algorithm builds Selectors. One Algorithm value serves a LoadBalancer for
// its whole life and may keep state that must survive rebuilds (a
// round-robin cursor), so Build is called with each new backend list.
//
// Build must not keep or modify the slice after returning except to read
// it; the LoadBalancer never modifies a slice it has passed to Build.
type Algorithm interface {
	Build(backends []Backend) (Selector, error)
}

// Keyed is implemented by an Algorithm that maps each key to a backend
// (FNV, Ketama, Maglev), for which KeyedSelection returns true. A changing
// weight would move keys between backends, so slow start does not ramp
// such an algorithm's weights: a backend there takes its whole share as
// soon as it is usable.
type Keyed interface {
	Algorithm
	KeyedSelection() bool
}

// isKeyed reports whether algo maps keys to backends.
func isKeyed(algo Algorithm) bool {
	k, ok := algo.(Keyed)
	return ok && k.KeyedSelection()
}

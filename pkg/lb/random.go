package lb

import (
	"fmt"
	"math/rand/v2"
)

var (
	_ Algorithm = Random{}
	_ Selector  = (*randomSelector)(nil)
)

// Random picks a backend at random with probability proportional to its
// weight. A pick costs O(1) whatever the weights, through a Walker/Vose
// alias table built once per backend list, and takes no lock: randomness
// comes from math/rand/v2's top-level functions, which draw from a
// generator the runtime keeps per thread.
//
// Keys are ignored. When the pick is unusable, the fallback is every other
// backend once, in list order starting after the pick (wrapping around).
// That keeps a failed backend's traffic deterministic and cheap to compute;
// it goes to its list successor, so put backends that should absorb each
// other's failures next to each other.
//
// Random holds no state; the zero value is ready to use.
type Random struct{}

// Build returns a Selector over backends. It fails with ErrBadWeight when a
// weight is outside 1 to MaxWeight. An empty list builds a Selector that
// yields nothing.
func (Random) Build(backends []Backend) (Selector, error) {
	if err := checkSelectionWeights(backends); err != nil {
		return nil, err
	}
	return &randomSelector{alias: newAliasTable(backends)}, nil
}

// randomSelector draws from an alias table. The cursor's Pos is the pick and
// Step counts the backends yielded.
type randomSelector struct {
	alias aliasTable
}

// Start draws the pick.
func (s *randomSelector) Start([]byte) Cursor {
	if s.alias.len() == 0 {
		return Cursor{}
	}
	return Cursor{Pos: uint64(s.alias.pick())}
}

// Next yields the pick, then every other backend in list order after it.
func (s *randomSelector) Next(c Cursor) (int, Cursor, bool) {
	return nextInListOrder(c, s.alias.len())
}

// nextInListOrder yields c.Pos, then the n-1 other indexes in cyclic list
// order after it, then reports the end: the fallback order of selectors
// whose sequence ahead is unknown.
func nextInListOrder(c Cursor, n int) (int, Cursor, bool) {
	if c.Step < 0 || c.Step >= n || c.Pos >= uint64(n) {
		return 0, c, false
	}
	idx := (c.Pos + uint64(c.Step)) % uint64(n)
	c.Step++
	return int(idx), c, true
}

// aliasTable samples an index with probability proportional to its weight
// in O(1) (Walker's alias method, built with Vose's algorithm). The weights
// are laid out as n columns of equal height total; column i is split
// between i, below keep[i], and alias[i] above it. A draw picks a column
// and a height. Everything is integer, so the probabilities are exact.
type aliasTable struct {
	keep  []uint64
	alias []int
	total uint64
}

// newAliasTable builds the table for the backends' weights, which must all
// be positive.
func newAliasTable(backends []Backend) aliasTable {
	n := len(backends)
	t := aliasTable{keep: make([]uint64, n), alias: make([]int, n)}
	for i := range backends {
		t.total += uint64(backends[i].Weight)
	}
	// Scaling every weight by n makes them sum to n columns of height total.
	// Vose's algorithm then tops up each short column with the excess of a
	// tall one, which may turn short in its turn.
	short, tall := make([]int, 0, n), make([]int, 0, n)
	for i := range backends {
		t.alias[i] = i
		t.keep[i] = uint64(backends[i].Weight) * uint64(n)
		if t.keep[i] < t.total {
			short = append(short, i)
		} else {
			tall = append(tall, i)
		}
	}
	for len(short) > 0 && len(tall) > 0 {
		s, l := short[len(short)-1], tall[len(tall)-1]
		short = short[:len(short)-1]
		t.alias[s] = l
		t.keep[l] -= t.total - t.keep[s]
		if t.keep[l] < t.total {
			tall = tall[:len(tall)-1]
			short = append(short, l)
		}
	}
	// The columns left over are exactly full (the arithmetic is exact);
	// pinning them to total makes them yield themselves unconditionally.
	for _, i := range append(short, tall...) {
		t.keep[i] = t.total
	}
	return t
}

func (t *aliasTable) len() int { return len(t.alias) }

// pick draws an index. The table must not be empty.
func (t *aliasTable) pick() int {
	col := rand.IntN(len(t.alias))
	if keep := t.keep[col]; keep == t.total || rand.Uint64N(t.total) < keep {
		return col
	}
	return t.alias[col]
}

// checkSelectionWeights rejects a weight that would break the weighted
// arithmetic (a zero total, a negative share); the error names the backend.
func checkSelectionWeights(backends []Backend) error {
	for i := range backends {
		if w := backends[i].Weight; w < 1 || w > MaxWeight {
			return fmt.Errorf("%w: %d for %s: must be 1 to %d", ErrBadWeight, w, backends[i].Addr, MaxWeight)
		}
	}
	return nil
}

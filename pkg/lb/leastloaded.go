package lb

import (
	"math/rand/v2"
	"slices"
)

var (
	_ Algorithm = LeastLoaded{}
	_ Selector  = (*leastLoadedSelector)(nil)
)

// LeastLoaded sends each request to the less loaded of two backends drawn at
// random ("power of two choices"). The two are distinct and drawn with
// probability proportional to their weights; a backend's load is its
// in-flight requests divided by its weight, and the first one drawn wins a
// tie. Comparing two random backends instead of scanning for the global
// minimum keeps a pick O(log n) and lock-free, and avoids the herd effect
// of every proxy sending to the same least loaded backend at once, while
// keeping the load nearly as even as a full scan would.
//
// The load is read from Backend.InFlight, so the proxy must call Acquire on
// the chosen Backend when a request starts and Release when it ends;
// without that every load reads zero and LeastLoaded degrades to weighted
// random. The counts live in the LoadBalancer's shared per-address state,
// so they survive rebuilds.
//
// Keys are ignored. When the pick is unusable, the fallback is the other
// sampled backend, then every remaining backend once, in list order
// starting after the pick (wrapping around). With one backend, it is
// yielded alone.
//
// LeastLoaded holds no state; the zero value is ready to use.
type LeastLoaded struct{}

// Build returns a Selector over backends, which it keeps to read their
// in-flight counts. It fails with ErrBadWeight when a weight is outside 1
// to MaxWeight. An empty list builds a Selector that yields nothing.
func (LeastLoaded) Build(backends []Backend) (Selector, error) {
	if err := checkSelectionWeights(backends); err != nil {
		return nil, err
	}
	s := &leastLoadedSelector{
		backends: backends,
		first:    newAliasTable(backends),
		ends:     make([]uint64, len(backends)),
	}
	var sum uint64
	for i := range backends {
		sum += uint64(backends[i].Weight)
		s.ends[i] = sum
	}
	return s, nil
}

// leastLoadedSelector compares two weighted samples. The cursor's Pos is the
// winner, Hash the other sample, and Step counts the backends yielded.
type leastLoadedSelector struct {
	backends []Backend
	// first draws the first sample.
	first aliasTable
	// ends holds the cumulative weights: backend i owns [ends[i]-w, ends[i]).
	// It draws the second sample, which must avoid the first.
	ends []uint64
}

// Start draws two backends and puts the less loaded one first.
func (s *leastLoadedSelector) Start([]byte) Cursor {
	if len(s.backends) < 2 {
		return Cursor{}
	}
	a := s.first.pick()
	b := s.sampleExcept(a)
	if s.lessLoaded(b, a) {
		a, b = b, a
	}
	return Cursor{Pos: uint64(a), Hash: uint64(b)}
}

// sampleExcept draws a backend other than skip, with probability
// proportional to its weight among the others.
func (s *leastLoadedSelector) sampleExcept(skip int) int {
	others := s.ends[len(s.ends)-1] - uint64(s.backends[skip].Weight)
	return s.ownerExcept(skip, rand.Uint64N(others))
}

// ownerExcept maps a point on the weight line with skip's interval cut out,
// in [0, total-weight(skip)), to the backend owning it: each other backend
// owns as many points as its weight.
func (s *leastLoadedSelector) ownerExcept(skip int, point uint64) int {
	if skipStart := s.ends[skip] - uint64(s.backends[skip].Weight); point >= skipStart {
		point += uint64(s.backends[skip].Weight)
	}
	owner, _ := slices.BinarySearch(s.ends, point+1)
	return owner
}

// lessLoaded reports whether backend x carries less in-flight work per unit
// of weight than backend y, comparing the ratios by cross-multiplication to
// stay exact.
func (s *leastLoadedSelector) lessLoaded(x, y int) bool {
	bx, by := &s.backends[x], &s.backends[y]
	return bx.InFlight()*int64(by.Weight) < by.InFlight()*int64(bx.Weight)
}

// Next yields the winner, the other sample, then the remaining backends in
// list order after the winner.
func (s *leastLoadedSelector) Next(c Cursor) (int, Cursor, bool) {
	n := len(s.backends)
	if c.Step < 0 || c.Step >= n || c.Pos >= uint64(n) || c.Hash >= uint64(n) {
		return 0, c, false
	}
	var idx int
	switch c.Step {
	case 0:
		idx = int(c.Pos)
	case 1:
		idx = int(c.Hash)
	default:
		idx = remainingAfter(int(c.Pos), int(c.Hash), c.Step-2, n)
	}
	c.Step++
	return idx, c, true
}

// remainingAfter returns the m-th of the n-2 indexes other than pick and
// other, counted in cyclic list order from the one after pick.
func remainingAfter(pick, other, m, n int) int {
	// other sits at this offset in the cyclic order after pick; the
	// indexes from there on shift by one to step over it.
	if m >= (other-pick-1+n)%n {
		m++
	}
	return (pick + 1 + m) % n
}

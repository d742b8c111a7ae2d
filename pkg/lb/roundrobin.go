package lb

import (
	"math"
	"sync"
	"sync/atomic"
)

// Limits on the precomputed round-robin table. Past them Build falls back to
// the live, mutex-guarded state: the table would cost too much memory (8
// bytes an entry) or too much time to build (the smooth step is O(n), so a
// table costs period × n steps at every rebuild).
const (
	// defaultRRTableLimit bounds the table's length, one smooth period.
	defaultRRTableLimit = 1 << 16
	// rrBuildWorkLimit bounds period × len(backends): about 20 ms of build
	// at worst, for 4096 backends of equal weight.
	rrBuildWorkLimit = 1 << 24
)

var (
	_ Algorithm = (*RoundRobin)(nil)
	_ Selector  = (*rrTableSelector)(nil)
	_ Selector  = (*rrLiveSelector)(nil)
)

// RoundRobin is nginx's smooth weighted round robin. At every pick each
// backend's current weight grows by its weight, the backend with the largest
// current weight is chosen (the earliest in the list on a tie), and the
// chosen one's current weight drops by the total weight. Traffic is thus
// interleaved rather than bunched: weights 5, 1, 1 for a, b, c give
// a a b a c a a, then again.
//
// The sequence repeats every sum(weights)/gcd(weights) picks. Build
// precomputes one such period, so that a pick is an atomic increment and a
// table read, with no lock. The position counter belongs to the RoundRobin,
// not to the Selector, so the rotation continues across rebuilds instead of
// restarting at the first (and often heaviest) backend each time the
// backend list changes. When the table would be too long or too slow to
// build (large coprime weights, or thousands of backends) the Selector runs
// the same algorithm live, O(n) a pick under a mutex, as nginx does; a
// rebuild with an unchanged list keeps that live state too.
//
// Keys are ignored. When the pick is unusable, the fallback first takes
// the next turns of the shared sequence, as nginx does: a dead backend's
// turns go to the backends that follow it in the rotation, one turn each,
// so traffic among the live ones stays evenly interleaved (a, b and a dead
// c give a b a b, not a b a a b a). After one period of such draws (four
// per backend in the live mode), it walks the sequence from the last draw
// until every backend
// has been yielded at least once, so a selection always ends. In the live
// mode that walk is the backends in list order after the last draw.
//
// The zero value is ready to use. A RoundRobin must not be copied after its
// first Build.
type RoundRobin struct {
	// next is the sequence number of the next pick in table mode;
	// nextBackup that of a list of backups (Backend.Backup), which the
	// LoadBalancer builds a selector for apart: a failed walk over the
	// primaries must not advance the backups' rotation, or the two
	// periods could lock every fallback onto the same backup.
	next       atomic.Uint64
	nextBackup atomic.Uint64

	// tableLimit overrides defaultRRTableLimit when positive, so tests can
	// force the live mode.
	tableLimit int

	// mu guards live, the live states of the last two live-mode builds,
	// most recent first, kept so a rebuild with the same list continues
	// its rotation. Two, because a LoadBalancer with backup backends
	// builds a selector for its primaries and one for its backups.
	mu   sync.Mutex
	live [2]*liveWRR
}

// Build returns a Selector over backends. It fails with ErrBadWeight when a
// weight is outside 1 to MaxWeight. An empty list builds a Selector that
// yields nothing.
func (rr *RoundRobin) Build(backends []Backend) (Selector, error) {
	if err := checkSelectionWeights(backends); err != nil {
		return nil, err
	}
	next := &rr.next
	if len(backends) > 0 && backends[0].Backup {
		next = &rr.nextBackup
	}
	if len(backends) == 0 {
		return &rrTableSelector{next: next}, nil
	}
	if rr.fitsTable(backends) {
		return &rrTableSelector{seq: smoothTable(backends), next: next}, nil
	}
	return &rrLiveSelector{state: rr.liveState(backends)}, nil
}

// fitsTable reports whether one smooth period of backends is short enough,
// and cheap enough to compute, to precompute.
func (rr *RoundRobin) fitsTable(backends []Backend) bool {
	limit := defaultRRTableLimit
	if rr.tableLimit > 0 {
		limit = rr.tableLimit
	}
	period := smoothPeriod(backends)
	return period <= limit && period <= math.MaxInt32 && period*len(backends) <= rrBuildWorkLimit
}

// liveState returns the live state for backends: the previous one when the
// list is unchanged, so that the rotation continues, or a fresh one.
func (rr *RoundRobin) liveState(backends []Backend) *liveWRR {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for i, l := range rr.live {
		if l != nil && sameSelection(l.backends, backends) {
			rr.live[0], rr.live[i] = l, rr.live[0]
			return l
		}
	}
	l := &liveWRR{
		backends: append([]Backend(nil), backends...),
		wrr:      newSmoothWRR(backends),
	}
	rr.live[0], rr.live[1] = l, rr.live[0]
	return l
}

// smoothWRR is the state of nginx's smooth weighted round robin: the one
// implementation of the algorithm, used both to precompute tables and live.
type smoothWRR struct {
	weights []int
	current []int
	total   int
}

func newSmoothWRR(backends []Backend) smoothWRR {
	s := smoothWRR{weights: make([]int, len(backends)), current: make([]int, len(backends))}
	for i := range backends {
		s.weights[i] = backends[i].Weight
		s.total += backends[i].Weight
	}
	return s
}

// step makes one pick and returns its index. The list must not be empty.
func (s *smoothWRR) step() int {
	best := 0
	for i, w := range s.weights {
		s.current[i] += w
		if s.current[i] > s.current[best] {
			best = i
		}
	}
	s.current[best] -= s.total
	return best
}

// smoothPeriod returns the length of the smooth sequence's cycle: scaling
// every weight by the same factor leaves the picks unchanged, so the cycle
// is the total of the weights divided by their greatest common divisor.
func smoothPeriod(backends []Backend) int {
	total, g := 0, 0
	for i := range backends {
		total += backends[i].Weight
		g = weightGCD(g, backends[i].Weight)
	}
	if g == 0 {
		return 0
	}
	return total / g
}

// rrSlot is one entry of a precomputed smooth sequence.
type rrSlot struct {
	// index is the backend picked at this position.
	index int32
	// span is how many entries, from this one on, it takes to see every
	// backend at least once: the length of the fallback from here.
	span int32
}

// smoothTable returns one period of the smooth sequence over a non-empty
// list, with the fallback spans filled in.
func smoothTable(backends []Backend) []rrSlot {
	wrr := newSmoothWRR(backends)
	seq := make([]rrSlot, smoothPeriod(backends))
	for i := range seq {
		seq[i].index = int32(wrr.step())
	}
	fillSpans(seq, len(backends))
	return seq
}

// fillSpans sets every slot's span with a sliding window over the cyclic
// sequence: the window [start, end) grows until it holds all n backends,
// then slides on by one. A whole period holds every backend, so end never
// passes start + len(seq), and the work is linear.
func fillSpans(seq []rrSlot, n int) {
	seen := make([]int, n)
	distinct, end := 0, 0
	for start := range seq {
		for distinct < n {
			idx := seq[end%len(seq)].index
			if seen[idx] == 0 {
				distinct++
			}
			seen[idx]++
			end++
		}
		seq[start].span = int32(end - start)
		idx := seq[start].index
		seen[idx]--
		if seen[idx] == 0 {
			distinct--
		}
	}
}

// rrTableSelector reads a precomputed smooth period. The cursor's Pos is the
// position of the last draw in the period and Step counts the entries
// yielded: the first draws come from the shared counter, the rest walk on
// from the last one.
type rrTableSelector struct {
	seq  []rrSlot
	next *atomic.Uint64
}

// Start takes the next position in the rotation.
func (s *rrTableSelector) Start([]byte) Cursor {
	if len(s.seq) == 0 {
		return Cursor{}
	}
	return Cursor{Pos: (s.next.Add(1) - 1) % uint64(len(s.seq))}
}

// Next yields the pick, then the entries that follow it in the sequence
// until every backend has been yielded.
func (s *rrTableSelector) Next(c Cursor) (int, Cursor, bool) {
	period := uint64(len(s.seq))
	if c.Pos >= period || c.Step < 0 {
		return 0, c, false
	}
	switch draws := len(s.seq); {
	case c.Step == 0:
	case c.Step < draws:
		c.Pos = (s.next.Add(1) - 1) % period
	default:
		walk := c.Step - draws + 1
		if walk >= int(s.seq[c.Pos].span) {
			return 0, c, false
		}
		c.Step++
		return int(s.seq[(c.Pos+uint64(walk))%period].index), c, true
	}
	c.Step++
	return int(s.seq[c.Pos].index), c, true
}

// liveDrawsPerBackend bounds the live mode's shared draws: each costs a
// locked O(n) step, and a period there is too long to draw in full.
const liveDrawsPerBackend = 4

// liveWRR is a smooth round-robin state shared by the live selectors built
// for one backend list.
type liveWRR struct {
	backends []Backend // the list, to recognise it at the next rebuild
	mu       sync.Mutex
	wrr      smoothWRR
}

func (l *liveWRR) step() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wrr.step()
}

// rrLiveSelector runs the smooth algorithm at every pick. The cursor's Pos
// is the pick and Step counts the backends yielded.
type rrLiveSelector struct {
	state *liveWRR
}

// Start makes the next smooth pick.
func (s *rrLiveSelector) Start([]byte) Cursor {
	return Cursor{Pos: uint64(s.state.step())}
}

// Next yields the pick, then further smooth picks, then every backend in
// list order after the last of them.
func (s *rrLiveSelector) Next(c Cursor) (int, Cursor, bool) {
	n := len(s.state.backends)
	if c.Pos >= uint64(n) || c.Step < 0 {
		return 0, c, false
	}
	switch draws := liveDrawsPerBackend * n; {
	case c.Step == 0:
	case c.Step < draws:
		c.Pos = uint64(s.state.step())
	default:
		walk := Cursor{Pos: c.Pos, Step: c.Step - draws + 1}
		idx, _, ok := nextInListOrder(walk, n)
		c.Step++
		return idx, c, ok
	}
	c.Step++
	return int(c.Pos), c, true
}

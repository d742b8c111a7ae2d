package lb

import (
	"errors"
	"fmt"
)

// ErrRingTooLarge is returned when a hash ring would need more entries than
// maxRingEntries: the weights ask for more memory than a selector may use.
var ErrRingTooLarge = errors.New("hash ring too large")

// maxRingEntries bounds the FNV slot ring and the Ketama point ring at 16 Mi
// entries: 64 MiB for FNV, 128 MiB for Ketama (twice that while sorting).
// A ring that large already means weights far outside any sensible
// configuration; refusing it keeps a typo in a weight from exhausting memory.
const maxRingEntries = 1 << 24

// FNV-1a 64 parameters (Fowler, Noll, Vo; draft-eastlake-fnv).
const (
	fnvOffset64 uint64 = 14695981039346656037
	fnvPrime64  uint64 = 1099511628211
)

// FNV selects a backend by the FNV-1a 64 hash of the key, modulo a weighted
// ring of slots in which each backend appears in proportion to its weight.
//
// It is plain modulo hashing: cheap and evenly spread, but adding or
// removing a backend moves most keys. Use Ketama or Maglev when keys must
// stay put across changes.
//
// When a key's backend is unusable, the Selector offers the following
// slots of the ring, one full turn: at most the sum of the (reduced)
// weights candidates, every backend among them.
//
// The zero value is ready to use.
type FNV struct{}

var (
	_ Algorithm = FNV{}
	_ Selector  = (*fnvSelector)(nil)
)

// Build returns a Selector over backends. Weights are reduced by their
// greatest common divisor first, so weights 100 and 200 cost a ring of 3
// slots, not 300. It fails with ErrBadWeight on a weight outside
// 1..MaxWeight and with ErrRingTooLarge when the reduced weights sum to more
// than 16 Mi slots.
func (FNV) Build(backends []Backend) (Selector, error) {
	weights, err := hashWeights(backends)
	if err != nil {
		return nil, err
	}
	divideByGCD(weights)
	var total uint64
	for _, w := range weights {
		total += w
	}
	if total > maxRingEntries {
		return nil, fmt.Errorf("%w: FNV: %d slots for %d backends after reducing weights by their common divisor; the limit is %d",
			ErrRingTooLarge, total, len(backends), maxRingEntries)
	}
	return &fnvSelector{slots: interleaveTurns(weights, int(total))}, nil
}

// fnvSelector is an immutable ring of backend indexes.
type fnvSelector struct {
	slots []uint32
}

// Start hashes key and places the cursor on its slot.
func (s *fnvSelector) Start(key []byte) Cursor {
	h := fnv1a64(key)
	if len(s.slots) == 0 {
		return Cursor{Hash: h}
	}
	return Cursor{Hash: h, Pos: h % uint64(len(s.slots))}
}

// Next returns the slots from the key's slot onwards, one full turn of the
// ring. Consecutive slots hold different backends wherever the weights allow
// (the ring is interleaved), so the first fallback is usually another
// backend; repeats are left for the caller to skip.
func (s *fnvSelector) Next(c Cursor) (int, Cursor, bool) {
	n := uint64(len(s.slots))
	if c.Step < 0 || uint64(c.Step) >= n {
		return 0, c, false
	}
	index := s.slots[(c.Pos+uint64(c.Step))%n]
	c.Step++
	return int(index), c, true
}

// fnv1a64 is FNV-1a 64 over key. It is written out because hash/fnv's
// New64a returns an interface value, which allocates on every call.
func fnv1a64(key []byte) uint64 {
	return fnv1a64From(fnvOffset64, key)
}

// fnv1a64From continues FNV-1a 64 from state h. Starting from a basis
// other than fnvOffset64 gives an independent hash of the same bytes.
func fnv1a64From(h uint64, data []byte) uint64 {
	for _, c := range data {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return h
}

// hashWeights returns the backends' weights, or ErrBadWeight naming the
// first backend whose weight is outside 1..MaxWeight. Checking here keeps
// the ring arithmetic below free of overflow and of empty turns.
func hashWeights(backends []Backend) ([]uint64, error) {
	weights := make([]uint64, len(backends))
	for i := range backends {
		w := backends[i].Weight
		if w < 1 || w > MaxWeight {
			return nil, fmt.Errorf("%w: %d for %s: must be 1 to %d", ErrBadWeight, w, backends[i].Addr, MaxWeight)
		}
		weights[i] = uint64(w)
	}
	return weights, nil
}

// divideByGCD divides every weight by their greatest common divisor.
func divideByGCD(weights []uint64) {
	var g uint64
	for _, w := range weights {
		g = weightGCD(g, w)
	}
	if g <= 1 {
		return
	}
	for i := range weights {
		weights[i] /= g
	}
}

// weightGCD is Euclid's algorithm; weightGCD(0, w) is w, which seeds the fold.
func weightGCD[T int | uint64](a, b T) T {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// interleaveTurns returns count turns shared among backends in proportion to
// weights, spread out rather than in bursts: backend i's k-th turn falls at
// the virtual time (k+½)/weights[i], and turns are taken in time order,
// ties to the lower index. Within any prefix of the sequence each backend
// has had its proportional number of turns, rounded; over the first
// sum(weights) turns each backend has exactly weights[i]. A zero weight
// gets no turns. The weights must not all be zero if count > 0.
func interleaveTurns(weights []uint64, count int) []uint32 {
	q := newTurnQueue(weights)
	turns := make([]uint32, count)
	for t := range turns {
		turns[t] = q.take()
	}
	return turns
}

// turnQueue is a binary min-heap of backend indexes ordered by the virtual
// time of each one's next turn. Times are compared as fractions
// (2k+1)/(2w) by cross-multiplying, so no floating point rounding can make
// two builds of the same list disagree.
type turnQueue struct {
	weights []uint64
	taken   []uint64
	heap    []uint32
}

func newTurnQueue(weights []uint64) *turnQueue {
	q := &turnQueue{weights: weights, taken: make([]uint64, len(weights))}
	for i, w := range weights {
		if w > 0 {
			q.heap = append(q.heap, uint32(i))
		}
	}
	for i := len(q.heap)/2 - 1; i >= 0; i-- {
		q.siftDown(i)
	}
	return q
}

// take returns the backend whose turn is due first and schedules its next.
func (q *turnQueue) take() uint32 {
	i := q.heap[0]
	q.taken[i]++
	q.siftDown(0)
	return i
}

// before reports whether backend a's next turn is due before backend b's.
// Turn counts and weights (Maglev passes its per-backend entry quotas) are
// at most 2^24, so the products stay below 2^50.
func (q *turnQueue) before(a, b uint32) bool {
	ta := (2*q.taken[a] + 1) * q.weights[b]
	tb := (2*q.taken[b] + 1) * q.weights[a]
	return ta < tb || ta == tb && a < b
}

func (q *turnQueue) siftDown(i int) {
	h := q.heap
	for {
		least := i
		if l := 2*i + 1; l < len(h) && q.before(h[l], h[least]) {
			least = l
		}
		if r := 2*i + 2; r < len(h) && q.before(h[r], h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// KeyedSelection returns true: FNV maps keys to backends (see Keyed).
func (FNV) KeyedSelection() bool { return true }

package lb

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// DefaultMaglevTableSize is the Maglev lookup table size used when
// Maglev.TableSize is 0: the prime the Maglev paper uses. It keeps shares
// exact to one entry in 65,537, and removing one of 100 backends changes
// about 1.5% of the entries, against the 1% that must move.
const DefaultMaglevTableSize = 65537

// MaxMaglevTableSize bounds the Maglev table (64 MiB of entries); larger
// tables buy nothing measurable and cost memory and build time.
const MaxMaglevTableSize = 1 << 24

// ErrBadTableSize is returned for a Maglev table size that is not a prime
// greater than the number of backends, or exceeds MaxMaglevTableSize.
var ErrBadTableSize = errors.New("bad Maglev table size")

// maglevEmpty marks an unfilled table entry while building. No backend
// index reaches it: there are fewer backends than entries, and entries
// fit in 32 bits.
const maglevEmpty = ^uint32(0)

// Seeds for the two hashes of a backend address that define its
// permutation. Any two distinct values make independent hashes.
const (
	maglevOffsetSeed uint64 = 0x9e3779b97f4a7c15
	maglevSkipSeed   uint64 = 0xc2b2ae3d27d4eb4f
)

// Maglev is weighted Maglev consistent hashing (Eisenbud et al., "Maglev:
// A Fast and Reliable Software Network Load Balancer", NSDI 2016): a
// lookup table of prime size M in which each backend owns entries in
// proportion to its weight. A key goes to entry hash(key) mod M, one array
// read. Removing or adding one of N backends moves about 1/N of the keys
// (plus a little more), and the table can be mirrored into a BPF array map
// as is (see MaglevTable).
//
// When a key's backend is unusable, the Selector offers the next 2N table
// entries (other backends, in proportion to weight, spreading the dead
// backend's keys), then every backend once, so a selection ends within
// 3N + 1 candidates however large the table.
type Maglev struct {
	// TableSize is the number of table entries: a prime greater than the
	// number of backends, at most MaxMaglevTableSize; 0 means
	// DefaultMaglevTableSize. Keep it at least 100 times the number of
	// backends for shares within 1% and near-minimal disruption.
	TableSize uint32
}

var (
	_ Algorithm = Maglev{}
	_ Selector  = (*maglevSelector)(nil)
)

// Build fills the lookup table for backends. It fails with ErrBadTableSize
// or ErrBadWeight naming the offending value. An empty list builds a
// Selector that yields nothing.
func (m Maglev) Build(backends []Backend) (Selector, error) {
	size := m.TableSize
	if size == 0 {
		size = DefaultMaglevTableSize
	}
	table, order, err := maglevBuild(backends, size)
	if err != nil {
		return nil, err
	}
	n := uint64(len(backends))
	walk := min(uint64(size)-1, 2*n)
	return &maglevSelector{table: table, order: order, backends: n, walk: walk}, nil
}

// MaglevTable returns the Maglev lookup table for backends: size entries,
// each the index in backends of the entry's owner. A key is served by
// entry h % size, where h is the 64-bit FNV-1a hash of the key passed
// through MurmurHash3's fmix64 finaliser; a data path that computes the
// same h picks the same backend as Maglev's Selector.
//
// The result is laid out for the BPF data path: a flat array of uint32
// indexes, entry i at position i, which can be written unchanged into a
// BPF_MAP_TYPE_ARRAY of size entries with 4-byte values (key i, value
// table[i]) next to an array of the backends in the same order. Entries
// name backends by position, and positions shift when the list changes,
// so a mirror must replace both arrays together (for example by swapping
// the inner maps of a BPF_MAP_TYPE_ARRAY_OF_MAPS), not patch entries.
//
// The table is a function of the backends' addresses and weights alone,
// not of their order: the list is filled in canonical order (see
// maglevOrder) and only the indexes written are the caller's. Balancer
// nodes that build from the same backends, however discovery or health
// checks ordered them, send every key to the same address, so a flow that
// ECMP moves from one node to another keeps its backend.
//
// Each backend owns its exact share of the entries, size × weight / total
// weight, rounded down or up (the entries left after rounding down go to
// the largest remainders), so shares are exact to one entry; a backend
// whose share is under one entry may own none. size
// must be a prime greater than len(backends) and at most
// MaxMaglevTableSize. An empty backend list gives an empty (nil) table:
// there is nothing for entries to point at, and a mirror must treat the
// service as having no backends.
func MaglevTable(backends []Backend, size uint32) ([]uint32, error) {
	table, _, err := maglevBuild(backends, size)
	return table, err
}

// maglevBuild returns MaglevTable's table and the canonical order it was
// filled in: order[r] is the index in backends of the backend of rank r.
func maglevBuild(backends []Backend, size uint32) (table, order []uint32, err error) {
	if err := checkMaglevTableSize(size, len(backends)); err != nil {
		return nil, nil, err
	}
	weights, err := hashWeights(backends)
	if err != nil {
		return nil, nil, err
	}
	if len(backends) == 0 {
		return nil, nil, nil
	}
	order = maglevOrder(backends)
	ranked := make([]Backend, len(backends))
	rankedWeights := make([]uint64, len(backends))
	for r, i := range order {
		ranked[r], rankedWeights[r] = backends[i], weights[i]
	}
	quotas := apportion(rankedWeights, uint64(size))
	table = fillMaglevTable(ranked, quotas, size)
	if !isIdentity(order) {
		for j, r := range table {
			table[j] = order[r]
		}
	}
	return table, order, nil
}

// maglevOrder returns the positions of backends in the canonical order the
// table is filled in: IP addresses first, by address then port (as
// netip.AddrPort compares them, so a list sorted that way, like pkg/maps'
// mirror, is already canonical and its table's entries are its ranks),
// then host names and sockets by their text, ties by weight, then by
// position. Filling breaks ties between backends by rank (apportion, the
// turn queue); ranking by what the backends are rather than where they
// stand in the list makes the table the same on every node.
func maglevOrder(backends []Backend) []uint32 {
	type ranked struct {
		ap     netip.AddrPort
		isAddr bool
	}
	keys := make([]ranked, len(backends))
	order := make([]uint32, len(backends))
	for i := range backends {
		ap, err := netip.ParseAddrPort(backends[i].Addr)
		keys[i] = ranked{ap: ap, isAddr: err == nil}
		order[i] = uint32(i)
	}
	slices.SortStableFunc(order, func(a, b uint32) int {
		ka, kb := keys[a], keys[b]
		var c int
		switch {
		case ka.isAddr && kb.isAddr:
			c = ka.ap.Compare(kb.ap)
		case ka.isAddr:
			return -1
		case kb.isAddr:
			return 1
		}
		return cmp.Or(c, strings.Compare(backends[a].Addr, backends[b].Addr),
			cmp.Compare(backends[a].Weight, backends[b].Weight))
	})
	return order
}

// isIdentity reports whether order leaves every backend where it is.
func isIdentity(order []uint32) bool {
	for r, i := range order {
		if uint32(r) != i {
			return false
		}
	}
	return true
}

// checkMaglevTableSize enforces what makes every permutation visit every
// entry (size prime) and every backend able to own one (size > backends).
func checkMaglevTableSize(size uint32, backends int) error {
	switch {
	case size > MaxMaglevTableSize:
		return fmt.Errorf("%w: %d: the limit is %d", ErrBadTableSize, size, MaxMaglevTableSize)
	case !isPrimeUint32(size):
		return fmt.Errorf("%w: %d is not prime", ErrBadTableSize, size)
	case uint64(size) <= uint64(backends):
		return fmt.Errorf("%w: %d for %d backends: must exceed the number of backends (ideally 100 times)", ErrBadTableSize, size, backends)
	}
	return nil
}

// isPrimeUint32 tests n exactly by trial division: at most 2,048 divisions
// for sizes up to MaxMaglevTableSize.
func isPrimeUint32(n uint32) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint32(3); d <= n/d; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// apportion splits size entries among backends in proportion to weights
// by the largest-remainder method: each gets the floor of its exact share,
// and the entries left over go one each to the largest remainders, ties to
// the lower index. Products stay below 2^24 × 2^14 and cannot overflow.
func apportion(weights []uint64, size uint64) []uint64 {
	var total uint64
	for _, w := range weights {
		total += w
	}
	quotas := make([]uint64, len(weights))
	remainders := make([]uint64, len(weights))
	left := size
	for i, w := range weights {
		quotas[i] = size * w / total
		remainders[i] = size * w % total
		left -= quotas[i]
	}
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(remainders[b], remainders[a]), cmp.Compare(a, b))
	})
	for _, i := range order[:left] {
		quotas[i]++
	}
	return quotas
}

// fillMaglevTable runs Maglev's population loop. Backends take turns in
// the interleaved order of their quotas (so a backend with twice the quota
// takes twice as many turns, spread evenly, not in a burst); on its turn a
// backend claims the next entry of its permutation that nobody owns. The
// permutation of backend i visits entry offset_i, offset_i + skip_i, … mod
// size, which reaches every entry because size is prime, so every turn
// ends. Exactly size turns fill the table with each backend owning its
// quota.
func fillMaglevTable(backends []Backend, quotas []uint64, size uint32) []uint32 {
	table := make([]uint32, size)
	for i := range table {
		table[i] = maglevEmpty
	}
	next := make([]uint32, len(backends))
	skip := make([]uint32, len(backends))
	for i := range backends {
		next[i], skip[i] = maglevPermutation(backends[i].Addr, size)
	}
	turns := newTurnQueue(quotas)
	for range size {
		i := turns.take()
		p := next[i]
		for table[p] != maglevEmpty {
			p = stepMod(p, skip[i], size)
		}
		table[p] = i
		next[i] = stepMod(p, skip[i], size)
	}
	return table
}

// maglevPermutation derives a backend's permutation from two independent
// hashes of its address: offset in [0, size), skip in [1, size-1]. It
// depends on the address alone, not on the backend's position or the other
// backends, which is what keeps entries in place when the list changes.
func maglevPermutation(addr string, size uint32) (offset, skip uint32) {
	a := []byte(addr)
	h1 := fmix64(fnv1a64From(fnvOffset64^maglevOffsetSeed, a))
	h2 := fmix64(fnv1a64From(fnvOffset64^maglevSkipSeed, a))
	offset = uint32(h1 % uint64(size))
	skip = 1
	if size > 1 {
		skip = uint32(h2%uint64(size-1)) + 1
	}
	return offset, skip
}

// stepMod returns (p + skip) mod size for p, skip < size ≤ 2^24.
func stepMod(p, skip, size uint32) uint32 {
	p += skip
	if p >= size {
		p -= size
	}
	return p
}

// fmix64 is MurmurHash3's 64-bit finaliser. FNV-1a alone leaves its low
// bits weakly mixed for short, similar keys ("user1", "user2"); reducing
// mod a prime after this avalanche spreads them evenly.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// maglevKeyHash is the key hash MaglevTable's entries are indexed by.
func maglevKeyHash(key []byte) uint64 {
	return fmix64(fnv1a64(key))
}

// maglevSelector is an immutable lookup table.
//
// Its fallback is bounded by the number of backends, not the table size:
// after the key's entry it walks the next walk entries (2 per backend, or
// the whole table if smaller), which are in the table's pseudo-random,
// weight-proportional order so a dead backend's keys spread over the
// others; then it sweeps every backend once in canonical order (order),
// starting at a point chosen by the key, so that backends owning no entry,
// or missed by the walk, are still reached. A selection ends within
// 1 + walk + N steps (at most 3N + 1), where walking all M entries would
// cost 65,537 steps per request once most backends are down. Every
// candidate, the sweep's included, depends on the backends and not on
// their order in the list, so nodes agree on the fallback too.
type maglevSelector struct {
	table    []uint32
	order    []uint32
	backends uint64
	walk     uint64
}

// Start hashes key and places the cursor on its table entry.
func (s *maglevSelector) Start(key []byte) Cursor {
	h := maglevKeyHash(key)
	if len(s.table) == 0 {
		return Cursor{Hash: h}
	}
	return Cursor{Hash: h, Pos: h % uint64(len(s.table))}
}

// Next returns the key's entry, then the walk, then the sweep.
func (s *maglevSelector) Next(c Cursor) (int, Cursor, bool) {
	if c.Step < 0 || s.backends == 0 {
		return 0, c, false
	}
	step := uint64(c.Step)
	var index uint64
	switch {
	case step <= s.walk:
		index = uint64(s.table[(c.Pos+step)%uint64(len(s.table))])
	case step <= s.walk+s.backends:
		index = uint64(s.order[(c.Hash%s.backends+step-s.walk-1)%s.backends])
	default:
		return 0, c, false
	}
	c.Step++
	return int(index), c, true
}

// KeyedSelection returns true: Maglev maps keys to backends (see Keyed).
func (Maglev) KeyedSelection() bool { return true }

package limit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxClients is the number of clients a RateLimiter tracks when
// its configuration names none. A client takes about 100 bytes (its slot
// and its share of the map, with their spare room), so 100,000 clients
// take some 10 MB.
const DefaultMaxClients = 100_000

// Rate is a token bucket's refill rate and size: a client may send Burst
// requests at once, and then PerSecond a second on average.
type Rate struct {
	// PerSecond is the number of tokens added a second, > 0. Fractions
	// are allowed: 0.5 is one request every two seconds (see Every).
	PerSecond float64
	// Burst is the size of the bucket, ≥ 1: the number of requests a
	// client that has been quiet for a while may send at once.
	Burst int
}

// Every returns the Rate of one request every interval, with a burst.
func Every(interval time.Duration, burst int) Rate {
	if interval <= 0 {
		return Rate{PerSecond: math.Inf(1), Burst: burst}
	}
	return Rate{PerSecond: float64(time.Second) / float64(interval), Burst: burst}
}

// Interval returns the time a token takes to refill, rounded to the
// nanosecond (at least 1 ns). It is meaningful only for a Rate that
// Validate accepts.
func (r Rate) Interval() time.Duration {
	return max(time.Duration(math.Round(float64(time.Second)/r.PerSecond)), 1)
}

// Validate reports whether r is a usable rate.
func (r Rate) Validate() error {
	if !(r.PerSecond > 0) || math.IsInf(r.PerSecond, 0) {
		return fmt.Errorf("limit: rate %v a second is not a positive finite number", r.PerSecond)
	}
	if r.Burst < 1 {
		return fmt.Errorf("limit: burst %d is less than 1 (a client could never send a request)", r.Burst)
	}
	if float64(time.Second)/r.PerSecond*float64(r.Burst) > math.MaxInt64/4 {
		return fmt.Errorf("limit: burst %d at %v a second spans more time than the limiter can count", r.Burst, r.PerSecond)
	}
	return nil
}

// String returns r as "10/s burst 20".
func (r Rate) String() string {
	return fmt.Sprintf("%g/s burst %d", r.PerSecond, r.Burst)
}

// RateConfig configures a RateLimiter.
type RateConfig struct {
	// Rate is each client's token bucket.
	Rate Rate
	// Key groups addresses into clients (each address by default).
	Key Key
	// MaxClients bounds the number of clients tracked at once (and so the
	// memory held); 0 means DefaultMaxClients. The bound is shared evenly
	// by the shards, rounded down (100,000 tracks at most 99,968). See
	// RateLimiter for what happens at the bound.
	MaxClients int
}

// RateLimiter limits the rate of requests from each client with a token
// bucket per client: a bucket holds up to Burst tokens, refills at
// PerSecond, and a request takes one token or is refused.
//
// A bucket is kept as the single time at which it would be full again
// (the "theoretical arrival time" of the generic cell rate algorithm), so
// a client costs one map entry and one 32-byte slot, and a bucket that is
// full carries no state at all: a client that is not tracked is a client
// with a full bucket. That makes forgetting full buckets free, and is how
// memory stays bounded. Clients are spread over up to 64 shards, each a
// map under its own mutex, by a seeded hash of their key.
//
// When a shard is full and a new client arrives, the shard first drops
// its full buckets (at most once a second), and if it is still full
// evicts one of eight clients sampled at random: a full one if there is
// one, else the one closest to full. An evicted client that was not full
// starts again with a full bucket; Evicted counts those. Under a flood of
// distinct addresses the limit thus fails open for a few clients rather
// than closed for new ones, and the tracked count never exceeds
// MaxClients.
//
// A client with no IP address (an invalid netip.Addr, as for a Unix
// socket peer) is not limited.
type RateLimiter struct {
	rate      Rate
	interval  int64 // ns a token takes to refill
	tolerance int64 // ns of burst: Burst·interval
	epoch     time.Time
	keyer     keyer
	seed      uint64
	bits      uint // log2 of len(shards)
	shards    []rateShard
}

// sweepEvery is how often a full shard may sweep itself of full buckets
// before it evicts.
const sweepEvery = int64(time.Second)

type rateShard struct {
	mu      sync.Mutex
	index   map[clientKey]uint32 // client → slot
	slots   []rateSlot
	free    []uint32 // unused slots, for reuse
	max     int
	swept   int64  // time of the last sweep
	rnd     uint64 // xorshift state for eviction samples
	evicted uint64 // clients evicted with a bucket not yet full
	_       [64]byte
}

type rateSlot struct {
	key  clientKey
	tat  int64 // when the bucket is full again, ns since epoch
	used bool
}

// NewRateLimiter returns a RateLimiter for cfg.
func NewRateLimiter(cfg RateConfig) (*RateLimiter, error) {
	if err := cfg.Rate.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Key.Validate(); err != nil {
		return nil, err
	}
	maxClients := cfg.MaxClients
	if maxClients < 0 {
		return nil, fmt.Errorf("limit: maximum number of clients %d is negative", maxClients)
	}
	if maxClients == 0 {
		maxClients = DefaultMaxClients
	}
	bits := shardBits(maxClients)
	l := &RateLimiter{
		rate:     cfg.Rate,
		interval: int64(cfg.Rate.Interval()),
		epoch:    time.Now(),
		keyer:    newKeyer(cfg.Key),
		seed:     rand.Uint64(),
		bits:     bits,
		shards:   make([]rateShard, 1<<bits),
	}
	l.tolerance = l.interval * int64(cfg.Rate.Burst)
	for i := range l.shards {
		s := &l.shards[i]
		s.index = make(map[clientKey]uint32)
		s.max = maxClients >> bits
		s.rnd = rand.Uint64() | 1
		s.swept = math.MinInt64
	}
	return l, nil
}

// shardBits returns log2 of the number of shards for max entries: 64,
// fewer when that would leave a shard fewer than 16 entries.
func shardBits(max int) uint {
	bits := uint(6)
	for bits > 0 && max>>bits < 16 {
		bits--
	}
	return bits
}

// Rate returns the limiter's rate.
func (l *RateLimiter) Rate() Rate { return l.rate }

// Allow takes a token from addr's bucket at time now. When the bucket is
// empty it returns false and how long until a token is there: the
// Retry-After of a 429 (round it up to whole seconds). A refused request
// takes nothing, so a client that retries too early is not pushed back
// further.
//
// now should come from time.Now (whose monotonic reading makes the
// limiter immune to changes of the wall clock); tests may pass any times
// that do not go backwards by much.
func (l *RateLimiter) Allow(addr netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	k, valid := l.keyer.key(addr)
	if !valid {
		return true, 0
	}
	t := int64(now.Sub(l.epoch))
	s := &l.shards[shardOf(k, l.seed, l.bits)]
	s.mu.Lock()
	i, known := s.index[k]
	tat := t
	if known && s.slots[i].tat > t {
		tat = s.slots[i].tat
	}
	next := tat + l.interval
	if wait := next - t - l.tolerance; wait > 0 {
		s.mu.Unlock()
		return false, time.Duration(wait)
	}
	if known {
		s.slots[i].tat = next
	} else {
		s.insert(k, next, t)
	}
	s.mu.Unlock()
	return true, 0
}

// insert tracks a new client, making room for it if the shard is full.
func (s *rateShard) insert(k clientKey, tat, now int64) {
	if len(s.index) >= s.max {
		s.makeRoom(now)
	}
	var i uint32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		i = uint32(len(s.slots))
		s.slots = append(s.slots, rateSlot{})
	}
	s.slots[i] = rateSlot{key: k, tat: tat, used: true}
	s.index[k] = i
}

// makeRoom frees at least one slot of a full shard.
func (s *rateShard) makeRoom(now int64) {
	if s.swept == math.MinInt64 || now-s.swept >= sweepEvery || now < s.swept {
		s.swept = now
		if s.sweep(now) > 0 {
			return
		}
	}
	// The shard is full of clients with state: sample a few and evict the
	// one that loses least. Slots are all in use, as the shard is full.
	victim := uint32(0)
	best := int64(math.MaxInt64)
	for range 8 {
		s.rnd ^= s.rnd << 13
		s.rnd ^= s.rnd >> 7
		s.rnd ^= s.rnd << 17
		i := uint32(s.rnd % uint64(len(s.slots)))
		if tat := s.slots[i].tat; s.slots[i].used && tat < best {
			victim, best = i, tat
		}
	}
	if best > now {
		s.evicted++
	}
	s.remove(victim)
}

// sweep drops the shard's full buckets and returns how many it dropped.
func (s *rateShard) sweep(now int64) int {
	n := 0
	for i := range s.slots {
		if s.slots[i].used && s.slots[i].tat <= now {
			s.remove(uint32(i))
			n++
		}
	}
	return n
}

func (s *rateShard) remove(i uint32) {
	delete(s.index, s.slots[i].key)
	s.slots[i] = rateSlot{}
	s.free = append(s.free, i)
}

// Sweep forgets every client whose bucket is full at now (they carry no
// state) and returns how many it forgot. Memory is bounded without it;
// calling it from a ticker keeps Len close to the number of clients
// actually limited, for a metric.
func (l *RateLimiter) Sweep(now time.Time) int {
	t := int64(now.Sub(l.epoch))
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.sweep(t)
		s.swept = t
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of clients tracked.
func (l *RateLimiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// Evicted returns the number of clients evicted, to make room for new
// ones, before their buckets were full: each of them was granted a fresh
// burst. A count that grows says MaxClients is too small for the traffic
// (or that a flood of addresses is under way).
func (l *RateLimiter) Evicted() uint64 {
	var n uint64
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.evicted
		s.mu.Unlock()
	}
	return n
}

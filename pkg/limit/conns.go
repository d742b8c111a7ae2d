package limit

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
)

// ConnConfig configures a ConnLimiter.
type ConnConfig struct {
	// Max is the number of connections a client may have open at once, ≥ 1.
	Max int
	// Key groups addresses into clients (each address by default).
	Key Key
}

// ConnLimiter limits the number of connections each client has open at
// once. A client has an entry only while it has a connection open, so the
// entries are never more than the connections (which the process's
// descriptor limit or a Gate bounds).
//
// Clients are spread over 64 shards, each a map under its own mutex, by a
// seeded hash of their key. A client with no IP address (an invalid
// netip.Addr, as for a Unix socket peer) is not limited.
type ConnLimiter struct {
	max    int32
	keyer  keyer
	seed   uint64
	shards [1 << connShardBits]connShard
}

const connShardBits = 6

type connShard struct {
	mu sync.Mutex
	n  map[clientKey]int32
	_  [64]byte
}

// NewConnLimiter returns a ConnLimiter for cfg.
func NewConnLimiter(cfg ConnConfig) (*ConnLimiter, error) {
	if cfg.Max < 1 || cfg.Max > 1<<30 {
		return nil, fmt.Errorf("limit: %d connections a client is out of range (1 to 2^30)", cfg.Max)
	}
	if err := cfg.Key.Validate(); err != nil {
		return nil, err
	}
	l := &ConnLimiter{max: int32(cfg.Max), keyer: newKeyer(cfg.Key), seed: rand.Uint64()}
	for i := range l.shards {
		l.shards[i].n = make(map[clientKey]int32)
	}
	return l, nil
}

// Max returns the number of connections a client may have open.
func (l *ConnLimiter) Max() int { return int(l.max) }

// Acquire counts a new connection from addr and returns true, or returns
// false when addr's client already has Max open (close the connection,
// or answer it with an error, without calling Release). Every true must
// be matched by one Release when the connection closes.
func (l *ConnLimiter) Acquire(addr netip.Addr) bool {
	k, ok := l.keyer.key(addr)
	if !ok {
		return true
	}
	s := &l.shards[shardOf(k, l.seed, connShardBits)]
	s.mu.Lock()
	n := s.n[k]
	if n >= l.max {
		s.mu.Unlock()
		return false
	}
	s.n[k] = n + 1
	s.mu.Unlock()
	return true
}

// Release counts a connection from addr closed; its client's entry goes
// when its count drops to 0. A Release without an Acquire that returned
// true is a bug in the caller; it is ignored for a client with no
// connections counted.
func (l *ConnLimiter) Release(addr netip.Addr) {
	k, ok := l.keyer.key(addr)
	if !ok {
		return
	}
	s := &l.shards[shardOf(k, l.seed, connShardBits)]
	s.mu.Lock()
	switch n := s.n[k]; {
	case n > 1:
		s.n[k] = n - 1
	case n == 1:
		delete(s.n, k)
	}
	s.mu.Unlock()
}

// Count returns the number of connections addr's client has open.
func (l *ConnLimiter) Count(addr netip.Addr) int {
	k, ok := l.keyer.key(addr)
	if !ok {
		return 0
	}
	s := &l.shards[shardOf(k, l.seed, connShardBits)]
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.n[k])
}

// Len returns the number of clients with a connection open.
func (l *ConnLimiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.n)
		s.mu.Unlock()
	}
	return n
}

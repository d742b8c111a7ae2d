package lb

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

var (
	_ Discovery = (*Static)(nil)
	_ Notifier  = (*Static)(nil)
)

// Static is a Discovery over a list of backends that the operator edits at
// runtime: an admin API adds, removes, reweights and drains servers, and
// the LoadBalancer picks each change up at once through Changed.
//
// Addresses are normalised on the way in (see ParseAddr), so a backend is
// found by any spelling of its address: Remove("[2001:DB8::1]:80") removes
// "[2001:db8::1]:80". The list keeps insertion order, which Discover reports.
//
// Every method is safe for concurrent use. A failed change leaves the list
// as it was.
type Static struct {
	mu       sync.Mutex
	backends []Backend      // insertion order; Addr normalised, state nil
	index    map[string]int // Addr → position in backends
	disabled map[string]bool
	changed  chan struct{}
}

// NewStatic returns a Static listing backends, in that order, all enabled.
// It fails, naming the offending value, on a bad address, a weight outside
// 1 to MaxWeight, or an address listed twice. An empty list is allowed: the
// service is known to have no servers yet.
func NewStatic(backends ...Backend) (*Static, error) {
	list, index, err := staticBackends(backends)
	if err != nil {
		return nil, err
	}
	return &Static{
		backends: list,
		index:    index,
		disabled: make(map[string]bool),
		// One slot is enough: the runner re-reads the whole set, so any
		// number of unread changes collapse into one signal.
		changed: make(chan struct{}, 1),
	}, nil
}

// Discover returns a copy of the list and of the drained addresses. The
// caller may modify the result, metadata maps included, without affecting
// the Static.
func (s *Static) Discover(ctx context.Context) (Set, error) {
	if err := ctx.Err(); err != nil {
		return Set{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	backends := make([]Backend, len(s.backends))
	for i, b := range s.backends {
		backends[i] = cloneStaticBackend(b)
	}
	return Set{Backends: backends, Disabled: maps.Clone(s.disabled)}, nil
}

// Changed returns the channel that receives after each change. Signals
// coalesce: a receiver that was busy during several changes gets one
// signal and should then call Discover. The channel is shared, so it is
// meant for one consumer (the LoadBalancer's runner).
func (s *Static) Changed() <-chan struct{} { return s.changed }

// Add appends b, enabled. It fails with an error wrapping ErrDuplicate if
// the address is already listed, or with ErrBadAddress or ErrBadWeight.
func (s *Static) Add(b Backend) error {
	nb, err := staticBackend(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.index[nb.Addr]; dup {
		return fmt.Errorf("%w: %s", ErrDuplicate, nb.Addr)
	}
	s.index[nb.Addr] = len(s.backends)
	s.backends = append(s.backends, nb)
	s.notify()
	return nil
}

// Remove deletes the backend at addr, forgetting whether it was drained.
// It fails with an error wrapping ErrUnknownBackend if addr is not listed.
func (s *Static) Remove(addr string) error {
	key, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[key]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownBackend, addr)
	}
	s.backends = slices.Delete(s.backends, i, i+1)
	delete(s.index, key)
	// Only the backends after the hole moved.
	for j := i; j < len(s.backends); j++ {
		s.index[s.backends[j].Addr] = j
	}
	delete(s.disabled, key)
	s.notify()
	return nil
}

// SetWeight changes the weight of the backend at addr. Setting the weight
// it already has is not a change and sends no signal.
func (s *Static) SetWeight(addr string, weight int) error {
	key, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	if err := staticCheckWeight(key, weight); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[key]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownBackend, addr)
	}
	if s.backends[i].Weight == weight {
		return nil
	}
	s.backends[i].Weight = weight
	s.notify()
	return nil
}

// SetEnabled drains (false) or restores (true) the backend at addr. A
// drained backend stays in the list, reported in Set.Disabled, so the
// LoadBalancer keeps its health and in-flight state but sends it no new
// traffic. Setting the state it already has sends no signal.
func (s *Static) SetEnabled(addr string, enabled bool) error {
	key, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.index[key]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownBackend, addr)
	}
	if !s.disabled[key] == enabled {
		return nil
	}
	if enabled {
		delete(s.disabled, key)
	} else {
		s.disabled[key] = true
	}
	s.notify()
	return nil
}

// Replace swaps the whole list for backends, validated as in NewStatic.
// An address that stays in the list keeps its drain state, so reloading a
// configuration does not put a server back into service that an operator
// drained; addresses that leave forget it. Replacing the list with an
// identical one sends no signal.
func (s *Static) Replace(backends ...Backend) error {
	list, index, err := staticBackends(backends)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sameStaticList(s.backends, list) {
		return nil
	}
	s.backends, s.index = list, index
	maps.DeleteFunc(s.disabled, func(addr string, _ bool) bool {
		_, kept := index[addr]
		return !kept
	})
	s.notify()
	return nil
}

// notify signals a change without ever blocking the editor: if a signal is
// already pending, the receiver has yet to read the set and will see this
// change too.
func (s *Static) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// staticBackends validates and normalises a list, returning private
// copies and the index of their addresses. The error names the first
// offending value.
func staticBackends(backends []Backend) ([]Backend, map[string]int, error) {
	list := make([]Backend, len(backends))
	index := make(map[string]int, len(backends))
	for i, b := range backends {
		nb, err := staticBackend(b)
		if err != nil {
			return nil, nil, err
		}
		if _, dup := index[nb.Addr]; dup {
			return nil, nil, fmt.Errorf("%w: %s", ErrDuplicate, nb.Addr)
		}
		index[nb.Addr] = i
		list[i] = nb
	}
	return list, index, nil
}

// staticBackend returns a private copy of b with its address normalised
// and no LoadBalancer state attached, or an error naming the bad value.
func staticBackend(b Backend) (Backend, error) {
	addr, err := ParseAddr(b.Addr)
	if err != nil {
		return Backend{}, err
	}
	if err := staticCheckWeight(addr, b.Weight); err != nil {
		return Backend{}, err
	}
	return Backend{Addr: addr, Weight: b.Weight, Metadata: maps.Clone(b.Metadata), Backup: b.Backup, MaxConnections: b.MaxConnections}, nil
}

// staticCheckWeight reports a weight outside 1 to MaxWeight for addr.
func staticCheckWeight(addr string, weight int) error {
	if weight < 1 || weight > MaxWeight {
		return fmt.Errorf("%w: %d for %s: must be 1 to %d", ErrBadWeight, weight, addr, MaxWeight)
	}
	return nil
}

// cloneStaticBackend copies b deeply enough that the copy's owner cannot
// reach b's metadata.
func cloneStaticBackend(b Backend) Backend {
	b.Metadata = maps.Clone(b.Metadata)
	return b
}

// sameStaticList reports whether two lists are identical, metadata included.
func sameStaticList(a, b []Backend) bool {
	return slices.EqualFunc(a, b, func(x, y Backend) bool {
		return x.Addr == y.Addr && x.Weight == y.Weight && x.Backup == y.Backup && x.MaxConnections == y.MaxConnections && maps.Equal(x.Metadata, y.Metadata)
	})
}

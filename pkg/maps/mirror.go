// Package maps mirrors a load balancer's usable backends into the eBPF
// data plane: it subscribes to pkg/lb's observer events and, whenever the
// set of backends that should serve changes, computes the service's Maglev
// table with the same pkg/lb code the L7 proxy uses and publishes both in
// one step through a Writer (pkg/dataplane's double-buffered maps).
//
// The set that serves follows pkg/lb's backup rule: the usable (healthy,
// enabled, not ejected) primaries while there is one, and the usable
// backups (lb.Backend.Backup) only while no primary is usable.
package maps

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
)

// Writer publishes one service's backends and its Maglev table, whose
// entries index backends, atomically from the data plane's point of view,
// and returns the new table generation.
type Writer interface {
	Write(backends []netip.AddrPort, table []uint32) (generation uint32, err error)
}

// WriterFunc adapts a function to Writer.
type WriterFunc func(backends []netip.AddrPort, table []uint32) (uint32, error)

// Write calls f.
func (f WriterFunc) Write(backends []netip.AddrPort, table []uint32) (uint32, error) {
	return f(backends, table)
}

// ErrNotIP is returned for a backend the data plane cannot address: a
// host name or a Unix socket. The kernel forwards to IP addresses only.
var ErrNotIP = errors.New("backend is not an IP address and port")

// State describes the mirror's last publication.
type State struct {
	Generation uint32
	Backends   []netip.AddrPort
	At         time.Time
	Err        error
}

// Mirror keeps one service's usable backends in the data plane. It is an
// lb.Observer; Run does the writing.
type Mirror struct {
	w    Writer
	size uint32
	log  *slog.Logger

	mu sync.Mutex
	// known is every backend the load balancer has, usable or not: a
	// primary's return must take the backups out of the table.
	known map[netip.AddrPort]known
	// serving is the set the table is built from, with weights.
	serving map[netip.AddrPort]int
	state   State
	dirty   bool

	kick      chan struct{}
	published chan struct{} // closed by the first successful write

	// syncMu makes Syncs one at a time, so that a caller's Sync returns
	// only once every change it saw before the call is written (or
	// failed), even while Run's own Sync is writing, and two writes are
	// never reordered.
	syncMu sync.Mutex
}

var _ lb.Observer = (*Mirror)(nil)

// New returns a Mirror writing tables of tableSize entries (a prime; 0
// means lb.DefaultMaglevTableSize) through w.
func New(w Writer, tableSize uint32, log *slog.Logger) *Mirror {
	if tableSize == 0 {
		tableSize = lb.DefaultMaglevTableSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mirror{w: w, size: tableSize, log: log,
		known: map[netip.AddrPort]known{}, serving: map[netip.AddrPort]int{},
		kick: make(chan struct{}, 1), published: make(chan struct{})}
}

// known is what the Mirror knows of one backend.
type known struct {
	weight int
	backup bool
	usable bool
}

// Observe records a backend's state and asks Run to publish if the set
// that should serve changed. It never blocks.
func (m *Mirror) Observe(e lb.Event) {
	ap, err := netip.ParseAddrPort(e.Backend.Addr)
	if err != nil {
		m.log.Error("backend cannot be mirrored into the data plane", "backend", e.Backend.Addr, "err", ErrNotIP)
		return
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	m.mu.Lock()
	if e.Kind == lb.Removed {
		delete(m.known, ap)
	} else {
		m.known[ap] = known{weight: e.Backend.Weight, backup: e.Backend.Backup, usable: e.Healthy && e.Enabled}
	}
	if next := m.servingSet(); !maps.Equal(next, m.serving) {
		m.serving = next
		m.dirty = true
	}
	dirty := m.dirty
	m.mu.Unlock()
	if dirty {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// servingSet returns the backends that should serve, with their weights:
// the usable primaries, or the usable backups when no primary is usable,
// as lb.LoadBalancer.Select picks. Call with mu held.
func (m *Mirror) servingSet() map[netip.AddrPort]int {
	set := map[netip.AddrPort]int{}
	for _, backups := range []bool{false, true} {
		for ap, k := range m.known {
			if k.usable && k.backup == backups {
				set[ap] = k.weight
			}
		}
		if len(set) > 0 {
			break
		}
	}
	return set
}

// Run publishes the usable set once ready is closed — after the load
// balancer's first health round, so that a restarted weir never replaces
// a live table with guesses — and then after every change, until ctx is
// done. Bursts of changes are coalesced into one write, and a failed write
// is retried with backoff until one succeeds.
func (m *Mirror) Run(ctx context.Context, ready <-chan struct{}) {
	select {
	case <-ctx.Done():
		return
	case <-ready:
	}
	m.markDirty()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	backoff := minRetry
	for {
		if err := m.Sync(); err != nil {
			m.log.Error("data plane update failed; retrying", "err", err, "in", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, maxRetry)
		} else {
			backoff = minRetry
		}
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-retry.C:
		}
	}
}

// A failed write is retried after minRetry, doubling up to maxRetry: a
// transient failure (a map briefly full, an interface being renamed)
// must not leave the kernel with a stale table until the next change.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second
)

func (m *Mirror) markDirty() {
	m.mu.Lock()
	m.dirty = true
	m.mu.Unlock()
}

// Sync publishes the serving set now if it changed since the last
// successful publication. A caller that changed the load balancer (an
// operator's drain) calls it to have the data plane follow before it
// returns; it is safe alongside Run.
func (m *Mirror) Sync() error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	m.dirty = false
	backends, weights := m.sortedServing()
	m.mu.Unlock()

	start := time.Now()
	table, err := m.table(backends, weights)
	if err == nil {
		var gen uint32
		gen, err = m.w.Write(backends, table)
		if err == nil {
			m.mu.Lock()
			select {
			case <-m.published:
			default:
				close(m.published)
			}
			m.state = State{Generation: gen, Backends: backends, At: time.Now()}
			m.mu.Unlock()
			m.log.Info("data plane updated", "generation", gen, "backends", len(backends),
				"took", time.Since(start).Round(time.Microsecond))
			return nil
		}
	}
	m.mu.Lock()
	m.dirty = true // try again with the next change
	m.state.Err = err
	m.mu.Unlock()
	return err
}

// sortedServing returns the serving backends in address order, so that
// the same set always yields the same table, in this process or the next.
// Call with mu held.
func (m *Mirror) sortedServing() ([]netip.AddrPort, []int) {
	backends := make([]netip.AddrPort, 0, len(m.serving))
	for ap := range m.serving {
		backends = append(backends, ap)
	}
	slices.SortFunc(backends, func(a, b netip.AddrPort) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Port(), b.Port()))
	})
	weights := make([]int, len(backends))
	for i, ap := range backends {
		weights[i] = m.serving[ap]
	}
	return backends, weights
}

// table computes the Maglev lookup table with pkg/lb's Maglev, the same
// code the L7 proxy selects with. An empty set gives an empty table: the
// data plane then drops the service's new flows and counts them.
func (m *Mirror) table(backends []netip.AddrPort, weights []int) ([]uint32, error) {
	if len(backends) == 0 {
		return nil, nil
	}
	bs := make([]lb.Backend, len(backends))
	for i, ap := range backends {
		b, err := lb.NewBackend(ap.String(), weights[i])
		if err != nil {
			return nil, err
		}
		bs[i] = b
	}
	t, err := lb.MaglevTable(bs, m.size)
	if err != nil {
		return nil, fmt.Errorf("maglev table over %d backends: %w", len(bs), err)
	}
	return t, nil
}

// Published is closed once the first write has succeeded: from then on
// the data plane serves this process's view of the backends.
func (m *Mirror) Published() <-chan struct{} { return m.published }

// State returns the last publication.
func (m *Mirror) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.state
	s.Backends = slices.Clone(s.Backends)
	return s
}

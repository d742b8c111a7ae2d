package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by LoadBalancer methods.
var (
	ErrNoDiscovery    = errors.New("load balancer has no discovery")
	ErrUnknownBackend = errors.New("unknown backend")
)

// maxSelectSteps bounds one selection against a Selector that never ends.
// Well-behaved selectors end far sooner: a full turn of the largest ring.
const maxSelectSteps = 1 << 22

// Options configures a LoadBalancer. Only Discovery is required.
type Options struct {
	// Discovery finds the backends. Required.
	Discovery Discovery
	// UpdateInterval is how often Run refreshes discovery; 0 means once,
	// at start. A Discovery that is a Notifier also triggers updates.
	UpdateInterval time.Duration

	// HealthCheck probes backends; nil means every backend is healthy.
	HealthCheck HealthCheck
	// CheckInterval is how often Run checks every backend; 0 means once,
	// at start.
	CheckInterval time.Duration
	// CheckTimeout bounds one check. 0 means CheckInterval (so rounds
	// never overlap), or no bound beyond the check's own when that is 0.
	CheckTimeout time.Duration
	// ParallelChecks runs a round's checks concurrently, one goroutine per
	// backend, instead of one after another.
	ParallelChecks bool
	// ConsecutiveSuccess is how many passing checks in a row make an
	// unhealthy backend healthy; ConsecutiveFailure how many failing ones
	// make a healthy backend unhealthy. 0 means 1.
	ConsecutiveSuccess int
	ConsecutiveFailure int
	// Initially is the health of a backend before its first check.
	Initially InitialHealth

	// Observers are told of every backend that is added, changes health
	// or enablement, or is removed. See Observer.
	Observers []Observer
	// Logger receives discovery and build failures from Run; nil discards.
	Logger *slog.Logger

	// Attach, when not nil, is called once for each backend address as
	// it joins, with the LoadBalancer's lock held; what it returns is the
	// backend's Ext for as long as the address stays. Per-backend
	// metrics are resolved here, once, rather than on every request.
	Attach func(b Backend) any
	// Checked, when not nil, is told of every health check's result: err
	// is nil when the check passed. It runs on the checking goroutine.
	Checked func(b Backend, err error, latency time.Duration)
	// Updated, when not nil, is told of every Update: the statistics of
	// a successful one, or its error (stats then only has At).
	Updated func(stats UpdateStats, err error)

	// Outlier, when not nil, turns on passive health: backends that fail
	// the requests the proxy reports (Backend.Report) are ejected for a
	// while. See OutlierDetection.
	Outlier *OutlierDetection
	// SlowStart, when positive, ramps the weight of a backend that joins
	// the pool or becomes usable again from a tenth of its weight to all
	// of it over this long (slowstart.go). Algorithms that map keys to
	// backends (Keyed) are not ramped.
	SlowStart time.Duration
	// Clock is the time source of passive health and slow start; nil
	// means the system clock. Tests set a fake one.
	Clock Clock
	// Limits, when not nil, bounds each backend's requests in flight
	// and queues those that find every backend full (slots.go). Only
	// the slot methods (TakeSlot, WaitSlot, …) honour it.
	Limits *ConnLimits
}

// UpdateStats describes the last successful Update.
type UpdateStats struct {
	At time.Time
	// Discovery is how long the Discovery took.
	Discovery time.Duration
	// Build is how long building the selector took; 0 when the backends
	// and weights were unchanged and the selector was kept.
	Build time.Duration
	// Rebuilt tells whether a new selector was built.
	Rebuilt  bool
	Backends int
}

// snapshot is one consistent view: the backends and the selectors built
// from exactly them, one for the primaries and one for the backups (see
// tier). Readers load it with one atomic read.
type snapshot struct {
	backends []Backend
	primary  tier
	backup   tier
}

// LoadBalancer selects healthy, enabled backends of one service with the
// selection algorithm A, keeping the backend set fresh from a Discovery
// and its health fresh from a HealthCheck.
//
// Select is lock-free and allocation-free. Updates publish a new snapshot
// atomically, so a reader never pairs a selector with another backend set.
type LoadBalancer[A Algorithm] struct {
	algo A
	opts Options

	clock Clock
	// passive is the outlier detection the states point at; nil without.
	passive *passive
	// ramps tells whether slow start applies; rampTimer, guarded by mu,
	// is the pending reweigh while some backend ramps.
	ramps     bool
	rampTimer Timer
	// waitq holds the requests waiting for a connection slot; nil
	// without Options.Limits.
	waitq *connQueue

	snap  atomic.Pointer[snapshot]
	stats atomic.Pointer[UpdateStats]

	// mu guards states and every non-atomic field of the states, and
	// orders events into pending.
	mu      sync.Mutex
	states  map[string]*backendState
	pending []Event
	// discovered is the last set applied, before overrides, so that an
	// override takes effect at once without asking the Discovery again.
	discovered Set
	// overrides are the operator's sticky settings by address, and seeds
	// the health verdicts a previous process handed over (override.go).
	overrides map[string]Override
	seeds     map[string]bool

	// updateMu serialises Updates, so that an Update called by an
	// operator's change cannot be overtaken by an older discovery.
	updateMu sync.Mutex

	// deliverMu makes event delivery one-at-a-time and in order, without
	// holding mu, so observers may read the LoadBalancer.
	deliverMu sync.Mutex

	// ready is closed once Run finished its first update and its first
	// round of health checks.
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a LoadBalancer that selects with algo. It holds no backends
// until the first Update (Run does one at once).
func New[A Algorithm](algo A, opts Options) (*LoadBalancer[A], error) {
	if opts.Discovery == nil {
		return nil, ErrNoDiscovery
	}
	if opts.ConsecutiveSuccess < 0 || opts.ConsecutiveFailure < 0 {
		return nil, fmt.Errorf("consecutive thresholds must not be negative: success %d, failure %d",
			opts.ConsecutiveSuccess, opts.ConsecutiveFailure)
	}
	if opts.ConsecutiveSuccess == 0 {
		opts.ConsecutiveSuccess = 1
	}
	if opts.ConsecutiveFailure == 0 {
		opts.ConsecutiveFailure = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SlowStart < 0 {
		return nil, fmt.Errorf("slow start %v must not be negative", opts.SlowStart)
	}
	lb := &LoadBalancer[A]{algo: algo, opts: opts, states: map[string]*backendState{}, ready: make(chan struct{}),
		overrides: map[string]Override{}, seeds: map[string]bool{}, clock: opts.Clock}
	if lb.clock == nil {
		lb.clock = systemClock{}
	}
	if opts.Outlier != nil {
		cfg, err := opts.Outlier.normalise()
		if err != nil {
			return nil, err
		}
		lb.passive = &passive{cfg: cfg, lb: lb}
	}
	lb.ramps = opts.SlowStart > 0 && !isKeyed(algo)
	if err := lb.initLimits(); err != nil {
		return nil, err
	}
	if _, err := algo.Build(nil); err != nil {
		return nil, fmt.Errorf("build selector for an empty pool: %w", err)
	}
	lb.snap.Store(&snapshot{})
	return lb, nil
}

// Algorithm returns the algorithm, for algorithm-specific calls.
func (lb *LoadBalancer[A]) Algorithm() A { return lb.algo }

// Select returns the first healthy, enabled backend that the algorithm
// yields for key, trying at most maxIterations distinct backends. The
// returned Backend belongs to the LoadBalancer: read it, do not modify it.
func (lb *LoadBalancer[A]) Select(key []byte, maxIterations int) (*Backend, bool) {
	return lb.SelectWith(key, maxIterations, nil)
}

// SelectWith is Select with an extra predicate: a backend is chosen only
// if accept (when not nil) also returns true, for example to skip the
// backends a retry already tried. Backends the algorithm yields more than
// once are considered once and count once towards maxIterations.
//
// Backup backends (Backend.Backup) are chosen only when no primary is
// usable: a usable primary that accept refuses, or that lies beyond
// maxIterations, still keeps the backups out.
func (lb *LoadBalancer[A]) SelectWith(key []byte, maxIterations int, accept func(*Backend) bool) (*Backend, bool) {
	s := lb.snap.Load()
	if b := s.primary.pick(s.backends, key, maxIterations, accept); b != nil {
		return b, true
	}
	if s.backup.sel == nil || s.primary.anyUsable() {
		return nil, false
	}
	if b := s.backup.pick(s.backends, key, maxIterations, accept); b != nil {
		return b, true
	}
	return nil, false
}

// Current returns the current backends, in discovery order, without
// copying them: the slice is shared and must not be modified. A new slice
// is published whenever the set changes, never the same one refilled, so
// a caller may index it and know its index stale when Current returns
// another slice. Lock-free and allocation-free, for lookups on the
// request path (sticky sessions); Backends returns a copy.
func (lb *LoadBalancer[A]) Current() []Backend { return lb.snap.Load().backends }

// Backends returns the current backends, in discovery order.
func (lb *LoadBalancer[A]) Backends() []Backend {
	return append([]Backend(nil), lb.snap.Load().backends...)
}

// LastUpdate returns statistics of the last successful Update, and false
// before the first.
func (lb *LoadBalancer[A]) LastUpdate() (UpdateStats, bool) {
	if s := lb.stats.Load(); s != nil {
		return *s, true
	}
	return UpdateStats{}, false
}

// Update asks the Discovery for the backend set and publishes it. On a
// discovery or build error the previous set stays in service and the error
// is returned. The selector is rebuilt only when the addresses, weights or
// their order changed; health, drain and in-flight state carry over for
// every address that stays.
func (lb *LoadBalancer[A]) Update(ctx context.Context) error {
	stats, err := lb.update(ctx)
	if lb.opts.Updated != nil {
		lb.opts.Updated(stats, err)
	}
	return err
}

func (lb *LoadBalancer[A]) update(ctx context.Context) (UpdateStats, error) {
	lb.updateMu.Lock()
	defer lb.updateMu.Unlock()
	start := time.Now()
	set, err := lb.opts.Discovery.Discover(ctx)
	discovered := time.Now()
	if err != nil {
		return UpdateStats{At: discovered}, fmt.Errorf("discover backends: %w", err)
	}
	if err := validateSet(set.Backends); err != nil {
		return UpdateStats{At: discovered}, fmt.Errorf("discovered backends: %w", err)
	}

	lb.mu.Lock()
	stats, err := lb.apply(set, start, discovered)
	if err == nil {
		lb.discovered = set
		clear(lb.seeds) // they were for the addresses of the first set
	}
	lb.mu.Unlock()
	lb.deliver()
	if err != nil {
		return UpdateStats{At: discovered}, err
	}
	lb.stats.Store(&stats)
	return stats, nil
}

// apply publishes set. Call with mu held.
func (lb *LoadBalancer[A]) apply(set Set, start, discovered time.Time) (UpdateStats, error) {
	old := lb.snap.Load()
	now := lb.clock.Now()
	backends := make([]Backend, len(set.Backends))
	fresh := make(map[string]*backendState)
	for i, b := range set.Backends {
		o := lb.overrides[b.Addr]
		if o.Weight != 0 {
			b.Weight = o.Weight
		}
		st := lb.states[b.Addr]
		if st == nil {
			st = newBackendState(lb.initialHealth(b.Addr))
			st.drained, st.weight, st.backup, st.passive = o.Drained, b.Weight, b.Backup, lb.passive
			st.queue = lb.waitq
			if lb.opts.Attach != nil {
				st.ext = lb.opts.Attach(b)
			}
			fresh[b.Addr] = st
		}
		b.state = st
		backends[i] = b
		if err := lb.setLimit(&b); err != nil {
			return UpdateStats{}, err
		}
	}

	// Publish the fresh states' enablement before building, so that slow
	// start knows which of them join the pool usable.
	for i := range backends {
		if st := backends[i].state; fresh[backends[i].Addr] != nil {
			st.enabledByDisc = !set.Disabled[backends[i].Addr]
			st.usable.Store(false) // not yet in any snapshot
			// A backend joining a pool that had others ramps up; the
			// first set has nothing to ramp against.
			if lb.publish(st, now) && len(old.backends) == 0 {
				st.rampStart = time.Time{}
			}
		}
	}
	primary, backup, rebuilt, err := lb.buildTiers(backends, old, now)
	if err != nil {
		return UpdateStats{}, fmt.Errorf("build selector over %d backends: %w", len(backends), err)
	}
	built := time.Now()

	for i := range backends {
		b := &backends[i]
		st := b.state
		enabled := !set.Disabled[b.Addr]
		if fresh[b.Addr] != nil {
			lb.states[b.Addr] = st
			lb.queue(Added, *b, st, now)
			continue
		}
		if st.enabledByDisc != enabled {
			wasEnabled := st.enabled()
			st.enabledByDisc = enabled
			lb.publish(st, now) // the tiers are rebuilt below if it ramps
			if st.enabled() != wasEnabled {
				lb.queue(EnabledChanged, *b, st, now)
			}
		}
		if st.weight != b.Weight {
			st.weight = b.Weight
			lb.queue(WeightChanged, *b, st, now)
		}
		if st.backup != b.Backup {
			st.backup = b.Backup
			lb.queue(BackupChanged, *b, st, now)
		}
	}
	lb.removeMissing(old.backends, backends, now)

	next := &snapshot{backends: backends, primary: primary, backup: backup}
	// An enablement change above may have started a ramp: weigh again.
	if p, b, again, err := lb.buildTiers(backends, next, now); err == nil && again {
		next.primary, next.backup, rebuilt = p, b, true
	}
	lb.snap.Store(next)
	lb.kickQueue()
	lb.scheduleRamp(now)
	stats := UpdateStats{At: now, Discovery: discovered.Sub(start), Rebuilt: rebuilt, Backends: len(backends)}
	if rebuilt {
		stats.Build = built.Sub(discovered)
	}
	return stats, nil
}

// removeMissing forgets the state of every old backend absent from cur.
// Call with mu held.
func (lb *LoadBalancer[A]) removeMissing(old, cur []Backend, now time.Time) {
	keep := make(map[string]struct{}, len(cur))
	for i := range cur {
		keep[cur[i].Addr] = struct{}{}
	}
	for _, b := range old {
		if _, ok := keep[b.Addr]; ok {
			continue
		}
		delete(lb.states, b.Addr)
		if b.state.ejectTimer != nil {
			b.state.ejectTimer.Stop()
		}
		lb.lostQueue(b.state)
		lb.queue(Removed, b, b.state, now)
	}
}

// SetEnabled enables or disables (drains) the backend at addr, whatever
// the Discovery says: a backend receives traffic only when both allow it.
// The setting lasts for as long as the address stays discovered.
func (lb *LoadBalancer[A]) SetEnabled(addr string, enabled bool) error {
	norm, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	lb.mu.Lock()
	st := lb.states[norm]
	if st == nil {
		lb.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownBackend, addr)
	}
	wasEnabled := st.enabled()
	st.enabledByUser = enabled
	now := lb.clock.Now()
	if lb.publish(st, now) {
		lb.reweigh(now)
	}
	if st.enabled() != wasEnabled {
		lb.queue(EnabledChanged, lb.currentBackend(norm), st, now)
	}
	lb.mu.Unlock()
	lb.deliver()
	return nil
}

// currentBackend returns the published Backend for addr. Call with mu held.
func (lb *LoadBalancer[A]) currentBackend(addr string) Backend {
	for _, b := range lb.snap.Load().backends {
		if b.Addr == addr {
			return b
		}
	}
	return Backend{Addr: addr}
}

// Status returns every backend's state, in discovery order.
func (lb *LoadBalancer[A]) Status() []Status {
	backends := lb.snap.Load().backends
	out := make([]Status, len(backends))
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for i, b := range backends {
		st := b.state
		out[i] = Status{
			Backend:      b,
			Healthy:      st.healthy,
			Enabled:      st.enabled(),
			Drained:      st.drained,
			InFlight:     st.inflight.Load(),
			LastCheck:    st.lastCheck,
			LastError:    st.lastErr,
			LastLatency:  st.lastLatency,
			Consecutive:  st.consecutive,
			Ejected:      st.ejected,
			EjectedUntil: st.ejectedUntil,
			Ejections:    st.ejections,
		}
		out[i].MaxConnections, out[i].Slots = st.max.Load(), st.slots.Load()
	}
	return out
}

// CheckHealth runs one round of health checks over the current backends
// and applies the consecutive thresholds. It returns when every check of
// the round has finished or ctx is done.
func (lb *LoadBalancer[A]) CheckHealth(ctx context.Context) {
	if lb.opts.HealthCheck == nil {
		return
	}
	backends := lb.snap.Load().backends
	if !lb.opts.ParallelChecks {
		for i := range backends {
			if ctx.Err() != nil {
				return
			}
			lb.checkOne(ctx, &backends[i])
		}
		return
	}
	var wg sync.WaitGroup
	for i := range backends {
		wg.Go(func() { lb.checkOne(ctx, &backends[i]) })
	}
	wg.Wait()
}

func (lb *LoadBalancer[A]) checkOne(ctx context.Context, b *Backend) {
	timeout := lb.opts.CheckTimeout
	if timeout == 0 {
		timeout = lb.opts.CheckInterval
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// A pass ends an ejection only if the check began after it: one in
	// flight when the backend was ejected says nothing of its failures.
	var seq uint64
	if lb.passive != nil {
		lb.mu.Lock()
		seq = b.state.ejectSeq
		lb.mu.Unlock()
	}
	start := time.Now()
	err := lb.opts.HealthCheck.Check(ctx, b)
	latency := time.Since(start)
	if ctx.Err() != nil && err != nil && errors.Is(context.Cause(ctx), context.Canceled) {
		return // the runner is stopping: not a verdict on the backend
	}
	if lb.opts.Checked != nil {
		lb.opts.Checked(*b, err, latency)
	}
	lb.record(b, err, start, latency, seq)
}

// record applies one check result to b's state. seq is the backend's
// ejection count when the check began.
func (lb *LoadBalancer[A]) record(b *Backend, err error, at time.Time, latency time.Duration, seq uint64) {
	lb.mu.Lock()
	st := b.state
	if lb.states[b.Addr] != st {
		lb.mu.Unlock()
		return // removed while its check ran
	}
	ok := err == nil
	st.lastCheck, st.lastErr, st.lastLatency = at, err, latency
	if ok == st.lastOK {
		st.consecutive++
	} else {
		st.lastOK, st.consecutive = ok, 1
	}
	wasUp := st.up()
	switch {
	case st.healthy && !ok && st.consecutive >= lb.opts.ConsecutiveFailure,
		!st.healthy && ok && st.consecutive >= lb.opts.ConsecutiveSuccess:
		st.healthy = ok
	}
	now := lb.clock.Now()
	if ok && st.ejected && st.ejectSeq == seq {
		lb.unEject(st, now)
	}
	ramp := lb.publish(st, now)
	if st.up() != wasUp {
		lb.queue(HealthChanged, lb.currentBackend(b.Addr), st, at.Add(latency))
	}
	if ramp {
		lb.reweigh(now)
	}
	lb.mu.Unlock()
	lb.deliver()
}

// queue records an event for delivery. Call with mu held.
func (lb *LoadBalancer[A]) queue(kind EventKind, b Backend, st *backendState, at time.Time) {
	if len(lb.opts.Observers) == 0 {
		return
	}
	e := Event{Kind: kind, Backend: b, Healthy: st.up(), Enabled: st.enabled(), Ejected: st.ejected, At: at}
	switch {
	case kind != HealthChanged || e.Healthy:
	case st.ejected:
		e.Reason = st.ejectErr
	default:
		e.Reason = st.lastErr
	}
	e.Backend.state = nil // observers get a plain value
	lb.pending = append(lb.pending, e)
}

// deliver hands every queued event to the observers, in order, one at a
// time. Whoever queued an event calls deliver after releasing mu; when it
// returns, its events have been delivered, by it or by an earlier caller.
func (lb *LoadBalancer[A]) deliver() {
	if len(lb.opts.Observers) == 0 {
		return
	}
	lb.deliverMu.Lock()
	defer lb.deliverMu.Unlock()
	for {
		lb.mu.Lock()
		batch := lb.pending
		lb.pending = nil
		lb.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, e := range batch {
			for _, o := range lb.opts.Observers {
				o.Observe(e)
			}
		}
	}
}

// Run keeps the LoadBalancer fresh until ctx is done: an Update and a
// health round at once, then updates every UpdateInterval (and whenever a
// Notifier discovery signals) and health rounds every CheckInterval. An
// interval of 0 means that work runs only at start. Errors are logged and
// the last good state stays in service. Run returns when ctx is done and
// every check it started has returned; a HealthCheck that is an
// io.Closer (one keeping connections alive) is closed then.
func (lb *LoadBalancer[A]) Run(ctx context.Context) {
	if c, ok := lb.opts.HealthCheck.(io.Closer); ok {
		defer c.Close()
	}
	if err := lb.Update(ctx); err != nil {
		lb.opts.Logger.Warn("load balancer update failed", "err", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { lb.updateLoop(ctx) })
	wg.Go(func() { lb.checkLoop(ctx) })
	wg.Wait()
}

func (lb *LoadBalancer[A]) updateLoop(ctx context.Context) {
	var tick <-chan time.Time
	if lb.opts.UpdateInterval > 0 {
		t := time.NewTicker(lb.opts.UpdateInterval)
		defer t.Stop()
		tick = t.C
	}
	var changed <-chan struct{}
	if n, ok := lb.opts.Discovery.(Notifier); ok {
		changed = n.Changed()
	}
	if tick == nil && changed == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-changed:
		}
		if err := lb.Update(ctx); err != nil && ctx.Err() == nil {
			lb.opts.Logger.Warn("load balancer update failed; keeping the last good backends", "err", err)
		}
	}
}

// Ready is closed once Run has done its first update and its first round
// of health checks, so that every backend's health reflects a real check.
// A consumer that must not act on initial guesses (the BPF map mirror on a
// restart, a graceful upgrade reporting ready) waits for it.
func (lb *LoadBalancer[A]) Ready() <-chan struct{} { return lb.ready }

func (lb *LoadBalancer[A]) checkLoop(ctx context.Context) {
	lb.CheckHealth(ctx)
	if ctx.Err() == nil {
		lb.readyOnce.Do(func() { close(lb.ready) })
	}
	if lb.opts.HealthCheck == nil || lb.opts.CheckInterval <= 0 {
		return
	}
	t := time.NewTicker(lb.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lb.CheckHealth(ctx)
		}
	}
}

// indexSet remembers the backend indexes a selection rejected. The first
// few live on the stack, so a selection that finds a backend quickly
// allocates nothing.
type indexSet struct {
	small [16]int32
	n     int
	more  map[int]struct{}
}

func (s *indexSet) has(i int) bool {
	for _, v := range s.small[:s.n] {
		if int(v) == i {
			return true
		}
	}
	_, ok := s.more[i]
	return ok
}

func (s *indexSet) add(i int) {
	if s.n < len(s.small) {
		s.small[s.n] = int32(i)
		s.n++
		return
	}
	if s.more == nil {
		s.more = make(map[int]struct{})
	}
	s.more[i] = struct{}{}
}

package lb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// listOrder yields every backend once, in list order, each `repeat` times
// in a row (to exercise duplicate skipping).
type listOrder struct{ repeat int }

type listOrderSelector struct{ n, repeat int }

func (a listOrder) Build(bs []Backend) (Selector, error) {
	return listOrderSelector{n: len(bs), repeat: max(a.repeat, 1)}, nil
}

func (s listOrderSelector) Start([]byte) Cursor { return Cursor{} }

func (s listOrderSelector) Next(c Cursor) (int, Cursor, bool) {
	if int(c.Pos) >= s.n*s.repeat {
		return 0, c, false
	}
	i := int(c.Pos) / s.repeat
	c.Pos++
	return i, c, true
}

// fakeDiscovery returns whatever set or error the test put in it.
type fakeDiscovery struct {
	mu      sync.Mutex
	set     Set
	err     error
	changed chan struct{}
}

func newFakeDiscovery(addrs ...string) *fakeDiscovery {
	d := &fakeDiscovery{changed: make(chan struct{}, 1)}
	d.setAddrs(addrs...)
	return d
}

func (d *fakeDiscovery) Discover(context.Context) (Set, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Set{Backends: slices.Clone(d.set.Backends), Disabled: maps.Clone(d.set.Disabled)}, d.err
}

func (d *fakeDiscovery) Changed() <-chan struct{} { return d.changed }

func (d *fakeDiscovery) setAddrs(addrs ...string) {
	bs := make([]Backend, len(addrs))
	for i, a := range addrs {
		bs[i] = MustBackend(a, 1)
	}
	d.setBackends(bs...)
}

func (d *fakeDiscovery) setBackends(bs ...Backend) {
	d.mu.Lock()
	d.set = Set{Backends: bs}
	d.mu.Unlock()
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func (d *fakeDiscovery) setErr(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

// fakeCheck fails the addresses marked down. It counts checks per address.
type fakeCheck struct {
	mu     sync.Mutex
	down   map[string]error
	checks map[string]int
	rounds chan string // receives every checked address, when not nil
}

func newFakeCheck() *fakeCheck {
	return &fakeCheck{down: map[string]error{}, checks: map[string]int{}}
}

func (f *fakeCheck) Check(ctx context.Context, b *Backend) error {
	f.mu.Lock()
	f.checks[b.Addr]++
	err := f.down[b.Addr]
	rounds := f.rounds
	f.mu.Unlock()
	if rounds != nil {
		select {
		case rounds <- b.Addr:
		case <-ctx.Done():
		}
	}
	return err
}

func (f *fakeCheck) set(addr string, err error) {
	f.mu.Lock()
	f.down[addr] = err
	f.mu.Unlock()
}

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Observe(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func newTestLB(t *testing.T, algo Algorithm, opts Options) *LoadBalancer[Algorithm] {
	t.Helper()
	l, err := New(algo, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

func mustUpdate(t *testing.T, l interface{ Update(context.Context) error }) {
	t.Helper()
	if err := l.Update(context.Background()); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func selectAddr[A Algorithm](l *LoadBalancer[A], max int) string {
	b, ok := l.Select(nil, max)
	if !ok {
		return ""
	}
	return b.Addr
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no discovery", Options{}, "no discovery"},
		{"negative success", Options{Discovery: newFakeDiscovery(), ConsecutiveSuccess: -1}, "must not be negative"},
		{"negative failure", Options{Discovery: newFakeDiscovery(), ConsecutiveFailure: -2}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(listOrder{}, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestSelectEmptyPool(t *testing.T) {
	l := newTestLB(t, listOrder{}, Options{Discovery: newFakeDiscovery()})
	if b, ok := l.Select([]byte("k"), 3); ok {
		t.Fatalf("Select before Update = %v, want none", b)
	}
	mustUpdate(t, l)
	if b, ok := l.Select([]byte("k"), 3); ok {
		t.Fatalf("Select on empty set = %v, want none", b)
	}
}

func TestSelectSkipsUnusable(t *testing.T) {
	const a, b, c = "192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80"
	tests := []struct {
		name    string
		repeat  int
		down    []string
		drained []string
		maxIter int
		want    string
	}{
		{"first is fine", 1, nil, nil, 1, a},
		{"first down", 1, []string{a}, nil, 2, b},
		{"first down, too few iterations", 1, []string{a}, nil, 1, ""},
		{"first drained", 1, nil, []string{a}, 2, b},
		{"two down", 1, []string{a, b}, nil, 3, c},
		{"all down", 1, []string{a, b, c}, nil, 10, ""},
		{"duplicates do not count", 4, []string{a}, nil, 2, b},
		{"duplicates of two down", 3, []string{a, b}, nil, 3, c},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := newFakeCheck()
			for _, d := range tc.down {
				check.set(d, errors.New("down"))
			}
			l := newTestLB(t, listOrder{repeat: tc.repeat}, Options{Discovery: newFakeDiscovery(a, b, c), HealthCheck: check})
			mustUpdate(t, l)
			l.CheckHealth(context.Background())
			for _, d := range tc.drained {
				if err := l.SetEnabled(d, false); err != nil {
					t.Fatal(err)
				}
			}
			if got := selectAddr(l, tc.maxIter); got != tc.want {
				t.Fatalf("Select = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSelectWithPredicate(t *testing.T) {
	const a, b, c = "192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80"
	l := newTestLB(t, listOrder{}, Options{Discovery: newFakeDiscovery(a, b, c)})
	mustUpdate(t, l)
	tried := []string{a, b}
	got, ok := l.SelectWith(nil, 3, func(be *Backend) bool { return !slices.Contains(tried, be.Addr) })
	if !ok || got.Addr != c {
		t.Fatalf("SelectWith skipping %v = %v, %v; want %s", tried, got, ok, c)
	}
	if _, ok := l.SelectWith(nil, 2, func(be *Backend) bool { return !slices.Contains(tried, be.Addr) }); ok {
		t.Fatal("SelectWith found a backend within 2 iterations although the first two are rejected")
	}
}

func TestSelectAllocatesNothing(t *testing.T) {
	d := newFakeDiscovery("192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80")
	check := newFakeCheck()
	check.set("192.0.2.1:80", errors.New("down"))
	l := newTestLB(t, listOrder{repeat: 2}, Options{Discovery: d, HealthCheck: check})
	mustUpdate(t, l)
	l.CheckHealth(context.Background())
	key := []byte("some key")
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := l.Select(key, 3); !ok {
			panic("no backend")
		}
	})
	if allocs != 0 {
		t.Fatalf("Select allocated %.1f times per call, want 0", allocs)
	}
}

func TestHealthThresholds(t *testing.T) {
	const addr = "192.0.2.1:80"
	down := errors.New("connection refused")
	// Each step is one check outcome; want is the health after it.
	tests := []struct {
		name          string
		success, fail int
		initially     InitialHealth
		steps         []bool
		want          []bool
	}{
		{"defaults follow every check", 0, 0, InitiallyHealthy,
			[]bool{false, true, false, false, true},
			[]bool{false, true, false, false, true}},
		{"two failures to go down", 1, 2, InitiallyHealthy,
			[]bool{false, true, false, false, true},
			[]bool{true, true, true, false, true}},
		{"three successes to come back", 3, 1, InitiallyHealthy,
			[]bool{false, true, true, false, true, true, true},
			[]bool{false, false, false, false, false, false, true}},
		{"flapping never crosses 2/2", 2, 2, InitiallyHealthy,
			[]bool{false, true, false, true, false, true},
			[]bool{true, true, true, true, true, true}},
		{"initially unhealthy needs its passes", 2, 1, InitiallyUnhealthy,
			[]bool{true, true, true},
			[]bool{false, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := newFakeCheck()
			l := newTestLB(t, listOrder{}, Options{
				Discovery: newFakeDiscovery(addr), HealthCheck: check,
				ConsecutiveSuccess: tc.success, ConsecutiveFailure: tc.fail, Initially: tc.initially,
			})
			mustUpdate(t, l)
			for i, ok := range tc.steps {
				if ok {
					check.set(addr, nil)
				} else {
					check.set(addr, down)
				}
				l.CheckHealth(context.Background())
				st := l.Status()[0]
				if st.Healthy != tc.want[i] {
					t.Fatalf("after check %d (%v): healthy = %v, want %v", i+1, ok, st.Healthy, tc.want[i])
				}
				if got := selectAddr(l, 1) == addr; got != tc.want[i] {
					t.Fatalf("after check %d: selectable = %v, want %v", i+1, got, tc.want[i])
				}
			}
		})
	}
}

func TestObserversSeeInitialStateAndChanges(t *testing.T) {
	const a, b = "192.0.2.1:80", "192.0.2.2:80"
	d := newFakeDiscovery(a, b)
	check := newFakeCheck()
	rec := &recorder{}
	l := newTestLB(t, listOrder{}, Options{Discovery: d, HealthCheck: check, Initially: InitiallyUnhealthy, Observers: []Observer{rec}})

	mustUpdate(t, l)
	want := []string{"added " + a + " healthy=false enabled=true", "added " + b + " healthy=false enabled=true"}
	expectEvents(t, rec.take(), want)

	refused := errors.New("connection refused")
	check.set(b, refused)
	l.CheckHealth(context.Background())
	got := rec.take()
	expectEvents(t, got, []string{"health " + a + " healthy=true enabled=true"})

	check.set(a, refused)
	l.CheckHealth(context.Background())
	got = rec.take()
	expectEvents(t, got, []string{"health " + a + " healthy=false enabled=true"})
	if !errors.Is(got[0].Reason, refused) {
		t.Fatalf("reason = %v, want %v", got[0].Reason, refused)
	}

	if err := l.SetEnabled(b, false); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, rec.take(), []string{"enabled " + b + " healthy=false enabled=false"})
	if err := l.SetEnabled(b, false); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, rec.take(), nil) // no change, no event

	d.setAddrs(b)
	mustUpdate(t, l)
	expectEvents(t, rec.take(), []string{"removed " + a + " healthy=false enabled=true"})
}

func expectEvents(t *testing.T, got []Event, want []string) {
	t.Helper()
	var g []string
	for _, e := range got {
		g = append(g, fmt.Sprintf("%s %s healthy=%v enabled=%v", e.Kind, e.Backend.Addr, e.Healthy, e.Enabled))
	}
	if !slices.Equal(g, want) {
		t.Fatalf("events:\n got %q\nwant %q", g, want)
	}
}

func TestObserverMayReadTheLoadBalancer(t *testing.T) {
	d := newFakeDiscovery("192.0.2.1:80")
	var l *LoadBalancer[Algorithm]
	var seen atomic.Int32
	obs := ObserverFunc(func(Event) {
		_ = l.Status() // must not deadlock
		seen.Add(1)
	})
	l = newTestLB(t, listOrder{}, Options{Discovery: d, Observers: []Observer{obs}})
	mustUpdate(t, l)
	if seen.Load() != 1 {
		t.Fatalf("observer saw %d events, want 1", seen.Load())
	}
}

func TestUpdateKeepsStateAcrossChanges(t *testing.T) {
	const a, b = "192.0.2.1:80", "192.0.2.2:80"
	d := newFakeDiscovery(a, b)
	check := newFakeCheck()
	check.set(a, errors.New("down"))
	l := newTestLB(t, listOrder{}, Options{Discovery: d, HealthCheck: check})
	mustUpdate(t, l)
	l.CheckHealth(context.Background())
	if err := l.SetEnabled(b, false); err != nil {
		t.Fatal(err)
	}
	ba := l.Backends()[1]
	ba.Acquire()

	// A weight change rebuilds the selector but keeps health, drain and
	// in-flight counts: identity is the address alone.
	d.setBackends(MustBackend(a, 5), MustBackend(b, 3))
	mustUpdate(t, l)
	st, _ := l.LastUpdate()
	if !st.Rebuilt {
		t.Fatal("weight change did not rebuild the selector")
	}
	status := l.Status()
	if status[0].Healthy || status[0].Backend.Weight != 5 {
		t.Fatalf("a after weight change: %+v, want unhealthy with weight 5", status[0])
	}
	if status[1].Enabled || status[1].InFlight != 1 {
		t.Fatalf("b after weight change: %+v, want disabled with 1 in flight", status[1])
	}
	ba.Release()

	// Metadata does not rebuild, but the new metadata is published.
	withMeta := MustBackend(a, 5)
	withMeta.Metadata = map[string]string{"zone": "x"}
	d.setBackends(withMeta, MustBackend(b, 3))
	mustUpdate(t, l)
	if st, _ := l.LastUpdate(); st.Rebuilt || st.Build != 0 {
		t.Fatalf("metadata change: stats %+v, want no rebuild", st)
	}
	if z := l.Backends()[0].Metadata["zone"]; z != "x" {
		t.Fatalf("metadata zone = %q, want x", z)
	}

	// Removing and re-adding a backend forgets its state.
	d.setAddrs(b)
	mustUpdate(t, l)
	d.setAddrs(a, b)
	mustUpdate(t, l)
	if s := l.Status()[0]; !s.Healthy {
		t.Fatalf("re-added backend %+v, want the initial (healthy) state", s)
	}
}

func TestDiscoveryDisabledAndUserDisabled(t *testing.T) {
	const a, b = "192.0.2.1:80", "192.0.2.2:80"
	d := newFakeDiscovery(a, b)
	l := newTestLB(t, listOrder{}, Options{Discovery: d})
	d.mu.Lock()
	d.set.Disabled = map[string]bool{a: true}
	d.mu.Unlock()
	mustUpdate(t, l)
	if got := selectAddr(l, 2); got != b {
		t.Fatalf("Select with %s disabled by discovery = %q, want %s", a, got, b)
	}
	if err := l.SetEnabled(b, false); err != nil {
		t.Fatal(err)
	}
	if got := selectAddr(l, 2); got != "" {
		t.Fatalf("Select with both disabled = %q, want none", got)
	}
	d.mu.Lock()
	d.set.Disabled = nil
	d.mu.Unlock()
	mustUpdate(t, l)
	if got := selectAddr(l, 2); got != a {
		t.Fatalf("Select after discovery re-enabled %s = %q, want it", a, got)
	}
	if err := l.SetEnabled("192.0.2.9:80", true); !errors.Is(err, ErrUnknownBackend) {
		t.Fatalf("SetEnabled(unknown) = %v, want ErrUnknownBackend", err)
	}
	if err := l.SetEnabled("not an address", true); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("SetEnabled(bad) = %v, want ErrBadAddress", err)
	}
}

func TestUpdateErrorsKeepLastGoodSet(t *testing.T) {
	const a = "192.0.2.1:80"
	tests := []struct {
		name    string
		mutate  func(d *fakeDiscovery)
		wantErr error
	}{
		{"discovery fails", func(d *fakeDiscovery) { d.setErr(errors.New("SERVFAIL")) }, nil},
		{"duplicate", func(d *fakeDiscovery) { d.setBackends(MustBackend(a, 1), MustBackend(a, 2)) }, ErrDuplicate},
		{"zero weight", func(d *fakeDiscovery) { d.setBackends(Backend{Addr: a, Weight: 0}) }, ErrBadWeight},
		{"negative weight", func(d *fakeDiscovery) { d.setBackends(Backend{Addr: a, Weight: -3}) }, ErrBadWeight},
		{"unparsable address", func(d *fakeDiscovery) { d.setBackends(Backend{Addr: "nope", Weight: 1}) }, ErrBadAddress},
		{"unnormalised address", func(d *fakeDiscovery) { d.setBackends(Backend{Addr: "[2001:DB8::1]:80", Weight: 1}) }, ErrBadAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDiscovery(a)
			l := newTestLB(t, listOrder{}, Options{Discovery: d})
			mustUpdate(t, l)
			tc.mutate(d)
			err := l.Update(context.Background())
			if err == nil {
				t.Fatal("Update succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Update error = %v, want %v", err, tc.wantErr)
			}
			if got := selectAddr(l, 1); got != a {
				t.Fatalf("after failed update Select = %q, want the last good %s", got, a)
			}
		})
	}
}

type failingAlgo struct{ calls int }

func (f *failingAlgo) Build(bs []Backend) (Selector, error) {
	f.calls++
	if len(bs) > 1 {
		return nil, errors.New("too many")
	}
	return listOrderSelector{n: len(bs), repeat: 1}, nil
}

func TestBuildErrorKeepsLastGoodSet(t *testing.T) {
	d := newFakeDiscovery("192.0.2.1:80")
	rec := &recorder{}
	l, err := New(&failingAlgo{}, Options{Discovery: d, Observers: []Observer{rec}})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, l)
	rec.take()
	d.setAddrs("192.0.2.1:80", "192.0.2.2:80")
	if err := l.Update(context.Background()); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("Update = %v, want the build error", err)
	}
	if n := len(l.Backends()); n != 1 {
		t.Fatalf("after failed build %d backends, want the last good 1", n)
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Fatalf("failed build told observers %v", ev)
	}
}

func TestUpdateStats(t *testing.T) {
	d := newFakeDiscovery("192.0.2.1:80")
	l := newTestLB(t, listOrder{}, Options{Discovery: d})
	if _, ok := l.LastUpdate(); ok {
		t.Fatal("LastUpdate before any update reported stats")
	}
	mustUpdate(t, l)
	st, ok := l.LastUpdate()
	if !ok || !st.Rebuilt || st.Backends != 1 || st.At.IsZero() || st.Discovery < 0 || st.Build < 0 {
		t.Fatalf("first update stats %+v", st)
	}
	mustUpdate(t, l)
	if st, _ := l.LastUpdate(); st.Rebuilt {
		t.Fatalf("unchanged update rebuilt: %+v", st)
	}
}

// lastSelector yields only the last backend of the list it was built from.
type lastAlgo struct{}
type lastSelector struct{ n int }

func (lastAlgo) Build(bs []Backend) (Selector, error) { return lastSelector{len(bs)}, nil }
func (s lastSelector) Start([]byte) Cursor            { return Cursor{} }
func (s lastSelector) Next(c Cursor) (int, Cursor, bool) {
	if c.Step > 0 || s.n == 0 {
		return 0, c, false
	}
	c.Step++
	return s.n - 1, c, true
}

// TestSnapshotsAreConsistent swaps between a 2- and a 3-backend set while
// readers select: a selector paired with the other set's backends would
// return a backend that is not some set's last.
func TestSnapshotsAreConsistent(t *testing.T) {
	setA := []string{"192.0.2.1:80", "192.0.2.2:80"}
	setB := []string{"198.51.100.1:80", "198.51.100.2:80", "198.51.100.3:80"}
	d := newFakeDiscovery(setA...)
	l := newTestLB(t, lastAlgo{}, Options{Discovery: d})
	mustUpdate(t, l)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var bad atomic.Value
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 20000 && ctx.Err() == nil; i++ {
				b, ok := l.Select(nil, 1)
				if !ok {
					bad.Store("no backend")
					return
				}
				if b.Addr != setA[1] && b.Addr != setB[2] {
					bad.Store(b.Addr)
					return
				}
			}
		})
	}
	for i := 0; i < 500 && ctx.Err() == nil; i++ {
		if i%2 == 0 {
			d.setAddrs(setB...)
		} else {
			d.setAddrs(setA...)
		}
		mustUpdate(t, l)
	}
	cancel()
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("a reader saw an inconsistent snapshot: %v", v)
	}
}

func TestParallelChecksRunConcurrently(t *testing.T) {
	addrs := []string{"192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80", "192.0.2.4:80"}
	var started sync.WaitGroup
	started.Add(len(addrs))
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	check := checkFunc(func(ctx context.Context, b *Backend) error {
		started.Done()
		select { // every check waits for all the others: sequential checks would time out
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	l := newTestLB(t, listOrder{}, Options{Discovery: newFakeDiscovery(addrs...), HealthCheck: check,
		ParallelChecks: true, CheckTimeout: 5 * time.Second})
	mustUpdate(t, l)
	l.CheckHealth(context.Background())
	for _, s := range l.Status() {
		if !s.Healthy || s.LastError != nil || s.LastCheck.IsZero() {
			t.Fatalf("backend %s: %+v, want a passed check", s.Backend.Addr, s)
		}
	}
}

type checkFunc func(context.Context, *Backend) error

func (f checkFunc) Check(ctx context.Context, b *Backend) error { return f(ctx, b) }

func TestCheckTimeoutFailsTheBackend(t *testing.T) {
	check := checkFunc(func(ctx context.Context, b *Backend) error {
		<-ctx.Done()
		return fmt.Errorf("check %s: %w", b.Addr, ctx.Err())
	})
	l := newTestLB(t, listOrder{}, Options{Discovery: newFakeDiscovery("192.0.2.1:80"), HealthCheck: check,
		CheckTimeout: 20 * time.Millisecond})
	mustUpdate(t, l)
	l.CheckHealth(context.Background())
	s := l.Status()[0]
	if s.Healthy || !errors.Is(s.LastError, context.DeadlineExceeded) {
		t.Fatalf("after a timed-out check: %+v, want unhealthy with a deadline error", s)
	}
}

func TestRunChecksEveryIntervalAndStops(t *testing.T) {
	const a, b = "192.0.2.1:80", "192.0.2.2:80"
	d := newFakeDiscovery(a, b)
	check := newFakeCheck()
	rec := &recorder{}
	events := make(chan Event, 16)
	obs := ObserverFunc(func(e Event) { rec.Observe(e); events <- e })
	l := newTestLB(t, listOrder{}, Options{Discovery: d, HealthCheck: check,
		CheckInterval: 20 * time.Millisecond, UpdateInterval: time.Hour, Observers: []Observer{obs}})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()

	waitEvent(t, events, func(e Event) bool { return e.Kind == Added && e.Backend.Addr == b })
	check.set(a, errors.New("refused"))
	waitEvent(t, events, func(e Event) bool { return e.Kind == HealthChanged && e.Backend.Addr == a && !e.Healthy })
	check.set(a, nil)
	waitEvent(t, events, func(e Event) bool { return e.Kind == HealthChanged && e.Backend.Addr == a && e.Healthy })

	// A Notifier discovery updates at once, not after the hour.
	d.setAddrs(a)
	waitEvent(t, events, func(e Event) bool { return e.Kind == Removed && e.Backend.Addr == b })

	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancellation")
	}
}

func TestRunOnceAtStart(t *testing.T) {
	check := newFakeCheck()
	l := newTestLB(t, listOrder{}, Options{Discovery: newFakeDiscovery("192.0.2.1:80"), HealthCheck: check})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	// With no intervals and a Notifier discovery, Run stays for updates.
	deadline := time.Now().Add(2 * time.Second)
	for {
		check.mu.Lock()
		n := check.checks["192.0.2.1:80"]
		check.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the start-up check ran %d times, want 1", n)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	check.mu.Lock()
	defer check.mu.Unlock()
	if n := check.checks["192.0.2.1:80"]; n != 1 {
		t.Fatalf("with CheckInterval 0 the backend was checked %d times, want once", n)
	}
}

func TestRunCancelInterruptsChecks(t *testing.T) {
	entered := make(chan struct{}, 1)
	check := checkFunc(func(ctx context.Context, b *Backend) error {
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	l := newTestLB(t, listOrder{}, Options{Discovery: newFakeDiscovery("192.0.2.1:80"), HealthCheck: check,
		CheckInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	<-entered
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s while a check was running")
	}
	if s := l.Status()[0]; !s.Healthy || !s.LastCheck.IsZero() {
		t.Fatalf("a check cut short by shutdown was recorded: %+v", s)
	}
}

func waitEvent(t *testing.T, events <-chan Event, match func(Event) bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if match(e) {
				return
			}
		case <-timeout:
			t.Fatal("timed out waiting for an event")
		}
	}
}

func TestReadyAfterFirstHealthRound(t *testing.T) {
	release := make(chan struct{})
	checked := make(chan struct{}, 1)
	check := checkFunc(func(ctx context.Context, b *Backend) error {
		checked <- struct{}{}
		<-release
		return nil
	})
	l := newTestLB(t, listOrder{}, Options{Discovery: newFakeDiscovery("192.0.2.1:80"), HealthCheck: check, CheckInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-checked
	select {
	case <-l.Ready():
		t.Fatal("Ready before the first health round finished")
	default:
	}
	close(release)
	select {
	case <-l.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not Ready 5s after the first health round finished")
	}
}

package lb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	oa = "192.0.2.1:80"
	ob = "192.0.2.2:80"
	oc = "192.0.2.3:80"
	od = "192.0.2.4:80"
)

// passivePool returns a round-robin LoadBalancer over addrs with outlier
// detection od, a fake clock and a recorder of its events.
func passivePool(t *testing.T, o OutlierDetection, check HealthCheck, addrs ...string) (*LoadBalancer[Algorithm], *ManualClock, *recorder) {
	t.Helper()
	clock, rec := newFakeClock(), &recorder{}
	l := newTestLB(t, &RoundRobin{}, Options{Discovery: newFakeDiscovery(addrs...), Outlier: &o,
		Clock: clock, Observers: []Observer{rec}, HealthCheck: check})
	mustUpdate(t, l)
	rec.take()
	return l, clock, rec
}

// backendAt returns l's published Backend at addr.
func backendAt[A Algorithm](t *testing.T, l *LoadBalancer[A], addr string) *Backend {
	t.Helper()
	cur := l.Current()
	for i := range cur {
		if cur[i].Addr == addr {
			return &cur[i]
		}
	}
	t.Fatalf("no backend %s", addr)
	return nil
}

func statusOf[A Algorithm](t *testing.T, l *LoadBalancer[A], addr string) Status {
	t.Helper()
	for _, s := range l.Status() {
		if s.Backend.Addr == addr {
			return s
		}
	}
	t.Fatalf("no status for %s", addr)
	return Status{}
}

// TestServerAnswering500IsEjected plays the proxy: every request goes to
// Select's choice and reports what came back. The backend answering 500
// to everything gets exactly Consecutive5xx requests, then none; the
// others take its share; it serves again when its ejection ends.
func TestServerAnswering500IsEjected(t *testing.T) {
	l, clock, rec := passivePool(t, OutlierDetection{Consecutive5xx: 4, BaseEjection: 10 * time.Second}, nil, oa, ob, oc)
	status := map[string]int{oa: 200, ob: 500, oc: 200}
	counts := map[string]int{}
	for range 300 {
		b, ok := l.Select(nil, 3)
		if !ok {
			t.Fatal("no backend")
		}
		counts[b.Addr]++
		b.Report(OutcomeOf(status[b.Addr]))
	}
	if counts[ob] != 4 || counts[oa] != 148 || counts[oc] != 148 {
		t.Fatalf("requests per backend %v, want 4 for the failing %s and 148 for each other", counts, ob)
	}
	st := statusOf(t, l, ob)
	if !st.Ejected || !st.Healthy || st.Ejections != 1 || !st.EjectedUntil.Equal(clock.Now().Add(10*time.Second)) {
		t.Fatalf("status of the failing backend %+v, want ejected for 10s, once, still checked healthy", st)
	}
	ev := rec.take()
	if len(ev) != 1 || ev[0].Kind != HealthChanged || ev[0].Healthy || !ev[0].Ejected || !errors.Is(ev[0].Reason, ErrEjected) ||
		!strings.Contains(ev[0].Reason.Error(), "4 consecutive server errors") {
		t.Fatalf("events %+v, want one HealthChanged: unhealthy, ejected, for 4 consecutive server errors", ev)
	}

	clock.Advance(9 * time.Second)
	if backendAt(t, l, ob).Usable() {
		t.Fatal("backend back before its ejection ended")
	}
	clock.Advance(time.Second)
	if !backendAt(t, l, ob).Usable() || statusOf(t, l, ob).Ejected {
		t.Fatal("backend still out after its ejection ended")
	}
	ev = rec.take()
	if len(ev) != 1 || ev[0].Kind != HealthChanged || !ev[0].Healthy || ev[0].Ejected || ev[0].Reason != nil {
		t.Fatalf("events %+v, want one HealthChanged back to healthy", ev)
	}
	clear(counts)
	for range 300 {
		b, _ := l.Select(nil, 3)
		counts[b.Addr]++
	}
	if counts[ob] != 100 {
		t.Fatalf("requests per backend after the return %v, want 100 each", counts)
	}
}

// TestReportCounts checks which runs of outcomes eject, for each rule.
func TestReportCounts(t *testing.T) {
	const (
		S = OutcomeSuccess
		G = OutcomeGatewayFailure
		E = OutcomeServerError
	)
	for _, tc := range []struct {
		name     string
		od       OutlierDetection
		outcomes []Outcome
		ejected  bool
	}{
		{"default 5 gateway failures", OutlierDetection{}, []Outcome{G, G, G, G, G}, true},
		{"4 gateway failures are not enough", OutlierDetection{}, []Outcome{G, G, G, G}, false},
		{"a success resets", OutlierDetection{ConsecutiveGatewayFailures: 3}, []Outcome{G, G, S, G, G}, false},
		{"a 500 ends a gateway run", OutlierDetection{ConsecutiveGatewayFailures: 3}, []Outcome{G, G, E, G, G}, false},
		{"500s ignored without Consecutive5xx", OutlierDetection{ConsecutiveGatewayFailures: 3}, []Outcome{E, E, E, E, E, E}, false},
		{"gateway failures count as 5xx", OutlierDetection{ConsecutiveGatewayFailures: 10, Consecutive5xx: 3}, []Outcome{E, G, E}, true},
		{"a success resets 5xx", OutlierDetection{ConsecutiveGatewayFailures: 10, Consecutive5xx: 3}, []Outcome{E, E, S, E, E}, false},
		{"502 503 504 are gateway failures", OutlierDetection{ConsecutiveGatewayFailures: 3},
			[]Outcome{OutcomeOf(502), OutcomeOf(503), OutcomeOf(504)}, true},
		{"4xx is a success", OutlierDetection{ConsecutiveGatewayFailures: 2}, []Outcome{G, OutcomeOf(404), G}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _, _ := passivePool(t, tc.od, nil, oa, ob, oc)
			b := backendAt(t, l, oa)
			for _, o := range tc.outcomes {
				b.Report(o)
			}
			if got := statusOf(t, l, oa).Ejected; got != tc.ejected {
				t.Fatalf("ejected = %v after %v, want %v", got, tc.outcomes, tc.ejected)
			}
		})
	}
}

func fail(b *Backend, n int) {
	for range n {
		b.Report(OutcomeGatewayFailure)
	}
}

// TestRepeatEjectionsLastLonger checks the multiplier, its cap, and its
// decay while the backend serves.
func TestRepeatEjectionsLastLonger(t *testing.T) {
	l, clock, _ := passivePool(t, OutlierDetection{ConsecutiveGatewayFailures: 2, BaseEjection: 10 * time.Second,
		MaxEjection: 25 * time.Second}, nil, oa, ob, oc)
	b := backendAt(t, l, oa)
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second} {
		fail(b, 2)
		st := statusOf(t, l, oa)
		if got := st.EjectedUntil.Sub(clock.Now()); !st.Ejected || got != want || st.Ejections != i+1 {
			t.Fatalf("ejection %d: %+v lasts %v, want %v", i+1, st, got, want)
		}
		clock.Advance(want)
		if !b.Usable() {
			t.Fatalf("not back after ejection %d", i+1)
		}
	}
	// Four ejections in a row; 20s in service takes two off the count,
	// so the next ejection is the third's length.
	clock.Advance(20 * time.Second)
	fail(b, 2)
	if got := statusOf(t, l, oa).EjectedUntil.Sub(clock.Now()); got != 25*time.Second {
		t.Fatalf("ejection after 20s of service lasts %v, want 25s (3 × 10s, capped)", got)
	}
	clock.Advance(25 * time.Second)
	clock.Advance(time.Hour)
	fail(b, 2)
	if got := statusOf(t, l, oa).EjectedUntil.Sub(clock.Now()); got != 10*time.Second {
		t.Fatalf("ejection after an hour of service lasts %v, want the base 10s", got)
	}
}

// TestMaxEjectionPercent checks that the cap holds, and that a refused
// ejection is tried again after as many failures once room is made.
func TestMaxEjectionPercent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		percent int
		addrs   []string
		want    int // backends ejected when all fail
	}{
		{"default 50% of 4", 0, []string{oa, ob, oc, od}, 2},
		{"50% of 3", 50, []string{oa, ob, oc}, 1},
		{"50% of 1", 50, []string{oa}, 0},
		{"100% of 2", 100, []string{oa, ob}, 2},
		{"25% of 4", 25, []string{oa, ob, oc, od}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _, _ := passivePool(t, OutlierDetection{ConsecutiveGatewayFailures: 3, MaxEjectionPercent: tc.percent}, nil, tc.addrs...)
			for _, a := range tc.addrs {
				fail(backendAt(t, l, a), 3)
			}
			ejected := 0
			for _, s := range l.Status() {
				if s.Ejected {
					ejected++
				}
			}
			if ejected != tc.want {
				t.Fatalf("%d ejected, want %d", ejected, tc.want)
			}
		})
	}

	l, clock, _ := passivePool(t, OutlierDetection{ConsecutiveGatewayFailures: 3, BaseEjection: time.Minute}, nil, oa, ob, oc)
	fail(backendAt(t, l, oa), 3)
	fail(backendAt(t, l, ob), 3)
	if statusOf(t, l, ob).Ejected {
		t.Fatal("a second of three backends was ejected at 50%")
	}
	clock.Advance(time.Minute) // oa returns
	fail(backendAt(t, l, ob), 2)
	if statusOf(t, l, ob).Ejected {
		t.Fatal("ejected before another full run of failures")
	}
	fail(backendAt(t, l, ob), 1)
	if !statusOf(t, l, ob).Ejected {
		t.Fatal("not ejected after another run of failures once the cap allowed it")
	}
}

// TestActiveCheckPassEndsEjection checks that a check that began after an
// ejection ends it, and one under way when the backend was ejected does
// not.
func TestActiveCheckPassEndsEjection(t *testing.T) {
	var l *LoadBalancer[Algorithm]
	ejectDuring := false
	check := checkFunc(func(_ context.Context, b *Backend) error {
		if ejectDuring && b.Addr == oa {
			fail(backendAt(t, l, oa), 2) // ejected while this check runs
		}
		return nil
	})
	l, _, rec := passivePool(t, OutlierDetection{ConsecutiveGatewayFailures: 2, BaseEjection: time.Hour}, check, oa, ob, oc)
	ejectDuring = true
	l.CheckHealth(context.Background())
	if !statusOf(t, l, oa).Ejected {
		t.Fatal("a check under way at the ejection ended it")
	}
	ejectDuring = false
	l.CheckHealth(context.Background())
	if st := statusOf(t, l, oa); st.Ejected || !backendAt(t, l, oa).Usable() {
		t.Fatalf("a passing check after the ejection did not end it: %+v", st)
	}
	expectEvents(t, rec.take(), []string{"health " + oa + " healthy=false enabled=true", "health " + oa + " healthy=true enabled=true"})
}

// TestEjectionNeedsAUsableBackend checks that a backend already out of
// selection is not ejected, and that its removal forgets the ejection.
func TestEjectionNeedsAUsableBackend(t *testing.T) {
	l, clock, rec := passivePool(t, OutlierDetection{ConsecutiveGatewayFailures: 1, MaxEjectionPercent: 100}, nil, oa, ob)
	if err := l.SetDrained(oa, true); err != nil {
		t.Fatal(err)
	}
	fail(backendAt(t, l, oa), 1)
	if statusOf(t, l, oa).Ejected {
		t.Fatal("a drained backend was ejected")
	}
	b := backendAt(t, l, ob)
	fail(b, 1)
	if !statusOf(t, l, ob).Ejected {
		t.Fatal("not ejected")
	}
	l.opts.Discovery.(*fakeDiscovery).setAddrs(oa)
	mustUpdate(t, l)
	rec.take()
	clock.Advance(time.Hour) // the removed backend's timer must not fire
	if ev := rec.take(); len(ev) != 0 {
		t.Fatalf("events after a removed backend's ejection time: %+v", ev)
	}
	b.Report(OutcomeGatewayFailure) // a stale Backend is harmless
}

func TestOutlierOptionsValidated(t *testing.T) {
	for _, o := range []OutlierDetection{
		{ConsecutiveGatewayFailures: -1}, {Consecutive5xx: -1}, {BaseEjection: -1}, {MaxEjection: -1},
		{MaxEjectionPercent: -1}, {MaxEjectionPercent: 101},
	} {
		if _, err := New(&RoundRobin{}, Options{Discovery: newFakeDiscovery(), Outlier: &o}); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
	if _, err := New(&RoundRobin{}, Options{Discovery: newFakeDiscovery(), SlowStart: -1}); err == nil {
		t.Error("New accepted a negative slow start")
	}
}

// TestReportAllocatesNothing is the hot path's promise: success and
// failure below the threshold are atomic operations only.
func TestReportAllocatesNothing(t *testing.T) {
	for _, o := range []Outcome{OutcomeSuccess, OutcomeGatewayFailure, OutcomeServerError} {
		t.Run(o.String(), func(t *testing.T) {
			l, _, _ := passivePool(t, OutlierDetection{ConsecutiveGatewayFailures: 1 << 30, Consecutive5xx: 1 << 30}, nil, oa, ob)
			b := backendAt(t, l, oa)
			if allocs := testing.AllocsPerRun(10000, func() { b.Report(o) }); allocs != 0 {
				t.Fatalf("Report(%v) allocated %.2f times, want 0", o, allocs)
			}
		})
	}
	var plain Backend
	plain.Report(OutcomeGatewayFailure) // no LoadBalancer: a no-op
}

// BenchmarkReport measures the per-request cost of passive health.
func BenchmarkReport(b *testing.B) {
	for _, o := range []Outcome{OutcomeSuccess, OutcomeGatewayFailure} {
		b.Run(strings.ReplaceAll(o.String(), " ", "_"), func(b *testing.B) {
			d, _ := NewStatic(MustBackend(oa, 1), MustBackend(ob, 1))
			l, err := New(&RoundRobin{}, Options{Discovery: d, Outlier: &OutlierDetection{ConsecutiveGatewayFailures: 1 << 30}})
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Update(context.Background()); err != nil {
				b.Fatal(err)
			}
			be := &l.Current()[0]
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					be.Report(o)
				}
			})
		})
	}
}

func ExampleBackend_Report() {
	static, _ := NewStatic(MustBackend("10.0.0.1:80", 1), MustBackend("10.0.0.2:80", 1), MustBackend("10.0.0.3:80", 1))
	upstream, _ := New(&RoundRobin{}, Options{
		Discovery: static,
		Outlier:   &OutlierDetection{ConsecutiveGatewayFailures: 3, BaseEjection: 30 * time.Second},
	})
	_ = upstream.Update(context.Background())
	for range 9 {
		b, _ := upstream.Select(nil, 3)
		status := 200
		if b.Addr == "10.0.0.2:80" {
			status = 503 // this one is overloaded
		}
		b.Report(OutcomeOf(status))
	}
	for _, s := range upstream.Status() {
		fmt.Println(s.Backend.Addr, "ejected:", s.Ejected)
	}
	// Output:
	// 10.0.0.1:80 ejected: false
	// 10.0.0.2:80 ejected: true
	// 10.0.0.3:80 ejected: false
}

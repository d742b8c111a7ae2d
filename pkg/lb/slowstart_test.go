package lb

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"
)

const (
	sa = "192.0.2.1:80"
	sb = "192.0.2.2:80"
	sc = "192.0.2.3:80"
)

// countingAlgo counts the selectors its Algorithm builds.
type countingAlgo struct {
	Algorithm
	builds atomic.Int64
}

func (c *countingAlgo) Build(bs []Backend) (Selector, error) {
	c.builds.Add(1)
	return c.Algorithm.Build(bs)
}

// slowPool returns a LoadBalancer over sa and sb with a 100s slow start,
// and its fake clock; sc joins when the test calls join.
func slowPool(t *testing.T, algo Algorithm, check HealthCheck) (l *LoadBalancer[Algorithm], clock *ManualClock, join func()) {
	t.Helper()
	clock = newFakeClock()
	d := newFakeDiscovery(sa, sb)
	l = newTestLB(t, algo, Options{Discovery: d, SlowStart: 100 * time.Second, Clock: clock, HealthCheck: check})
	mustUpdate(t, l)
	return l, clock, func() {
		d.setAddrs(sa, sb, sc)
		mustUpdate(t, l)
	}
}

// share is the fraction of n selections that go to addr.
func share[A Algorithm](l *LoadBalancer[A], addr string, n int) float64 {
	return float64(split(l, n)[addr]) / float64(n)
}

// TestSlowStartRoundRobinExact follows a joining backend's share with
// round robin, whose split over whole periods is exact: weights scaled by
// 10 while it ramps, its own from 1 (a tenth) to 10 in ten steps.
func TestSlowStartRoundRobinExact(t *testing.T) {
	l, clock, join := slowPool(t, &RoundRobin{}, nil)
	if got := split(l, 200); got[sa] != 100 || got[sb] != 100 {
		t.Fatalf("the first set ramped: %v", got)
	}
	join()
	joined := clock.Now()
	for _, step := range []struct {
		at     time.Duration // since the join
		weight int           // of sc, against 10 for the others
	}{
		{0, 1}, {9 * time.Second, 1}, {10 * time.Second, 2}, {50 * time.Second, 6}, {80 * time.Second, 9}, {90 * time.Second, 10},
	} {
		clock.Advance(joined.Add(step.at).Sub(clock.Now()))
		period := 20 + step.weight
		if got := split(l, 100*period); got[sc] != 100*step.weight {
			t.Fatalf("at %v: %v, want %d for %s", step.at, got, 100*step.weight, sc)
		}
	}
	clock.Advance(10 * time.Second)
	if got := split(l, 300); got[sc] != 100 {
		t.Fatalf("after the ramp: %v, want an even split", got)
	}
}

// TestSlowStartWeightedRandom checks the ramp statistically for the
// randomised algorithms, and that keyed ones take their share at once.
func TestSlowStartWeightedRandom(t *testing.T) {
	const n = 20000
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			l, clock, join := slowPool(t, a.new(), nil)
			join()
			keyed := isKeyed(a.new())
			for _, step := range []struct {
				advance time.Duration
				want    float64 // share of sc
			}{
				{0, 1.0 / 21}, {50 * time.Second, 6.0 / 26}, {50 * time.Second, 1.0 / 3},
			} {
				clock.Advance(step.advance)
				got := share(l, sc, n)
				if keyed {
					if got < 0.2 {
						t.Fatalf("keyed algorithm ramped: share %.3f after %v", got, step.advance)
					}
					continue
				}
				if math.Abs(got-step.want) > 0.025 {
					t.Fatalf("share of %s %.3f, want %.3f ± 0.025", sc, got, step.want)
				}
			}
		})
	}
}

// TestSlowStartRebuildsAreBounded checks that a ramp costs at most one
// build per tenth of the window, and stops its timer at the end.
func TestSlowStartRebuildsAreBounded(t *testing.T) {
	algo := &countingAlgo{Algorithm: &RoundRobin{}}
	_, clock, join := slowPool(t, algo, nil)
	before := algo.builds.Load()
	join()
	for range 150 {
		clock.Advance(time.Second)
	}
	if got := algo.builds.Load() - before; got > rampSteps+1 || got < 2 {
		t.Fatalf("a ramp built %d selectors, want 2 to %d", got, rampSteps+1)
	}
	clock.mu.Lock()
	pending := len(clock.timers)
	clock.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d timers pending after the ramp", pending)
	}
}

// TestSlowStartAfterRecovery checks that a backend turning healthy again,
// or returning from an ejection, ramps too.
func TestSlowStartAfterRecovery(t *testing.T) {
	check := newFakeCheck()
	l, clock, join := slowPool(t, &RoundRobin{}, check)
	join()
	clock.Advance(100 * time.Second)
	check.set(sb, fmt.Errorf("down"))
	l.CheckHealth(context.Background())
	check.set(sb, nil)
	l.CheckHealth(context.Background())
	if got := split(l, 2100); got[sb] != 100 {
		t.Fatalf("recovered backend: %v, want 100 of 2100 (a tenth of its weight)", got)
	}
	clock.Advance(100 * time.Second)

	o := OutlierDetection{ConsecutiveGatewayFailures: 1, BaseEjection: time.Second}
	clock2 := newFakeClock()
	l2 := newTestLB(t, &RoundRobin{}, Options{Discovery: newFakeDiscovery(sa, sb, sc), SlowStart: 100 * time.Second,
		Clock: clock2, Outlier: &o})
	mustUpdate(t, l2)
	backendAt(t, l2, sc).Report(OutcomeGatewayFailure)
	clock2.Advance(time.Second)
	if got := split(l2, 2100); got[sc] != 100 {
		t.Fatalf("backend back from ejection: %v, want 100 of 2100", got)
	}
}

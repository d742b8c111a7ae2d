package lb

import (
	"context"
	"errors"
	"maps"
	"testing"
)

// shares selects n times from l and counts each address.
func shares[A Algorithm](l *LoadBalancer[A], n int) map[string]int {
	got := map[string]int{}
	for range n {
		got[selectAddr(l, 8)]++
	}
	return got
}

// TestOverridesApplyOnTopOfEveryDiscovery: a weight or a drain set by an
// operator takes effect at once and survives every later discovery
// result, the address's absence from one included, until cleared.
func TestOverridesApplyOnTopOfEveryDiscovery(t *testing.T) {
	const a, b, c = "192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80"
	tests := []struct {
		name string
		// change runs after the first Update; rediscover runs the
		// discovery again, possibly without the address for a while.
		change     func(l *LoadBalancer[*RoundRobin]) error
		rediscover func(t *testing.T, d *fakeDiscovery, l *LoadBalancer[*RoundRobin])
		want       map[string]int // out of 40 selections
		wantEvents []string
	}{
		{
			name:       "weight",
			change:     func(l *LoadBalancer[*RoundRobin]) error { return l.SetWeight(a, 3) },
			want:       map[string]int{a: 30, b: 10},
			wantEvents: []string{"weight " + a + " healthy=true enabled=true"},
		},
		{
			name:   "weight survives a refresh",
			change: func(l *LoadBalancer[*RoundRobin]) error { return l.SetWeight(a, 3) },
			rediscover: func(t *testing.T, d *fakeDiscovery, l *LoadBalancer[*RoundRobin]) {
				mustUpdate(t, l)
			},
			want:       map[string]int{a: 30, b: 10},
			wantEvents: []string{"weight " + a + " healthy=true enabled=true"},
		},
		{
			name: "weight cleared",
			change: func(l *LoadBalancer[*RoundRobin]) error {
				return errors.Join(l.SetWeight(a, 3), l.SetWeight(a, 0))
			},
			want: map[string]int{a: 20, b: 20},
			wantEvents: []string{"weight " + a + " healthy=true enabled=true",
				"weight " + a + " healthy=true enabled=true"},
		},
		{
			name:       "drain",
			change:     func(l *LoadBalancer[*RoundRobin]) error { return l.SetDrained(a, true) },
			want:       map[string]int{b: 40},
			wantEvents: []string{"enabled " + a + " healthy=true enabled=false"},
		},
		{
			name:   "drain outlives the address's absence",
			change: func(l *LoadBalancer[*RoundRobin]) error { return l.SetDrained(a, true) },
			rediscover: func(t *testing.T, d *fakeDiscovery, l *LoadBalancer[*RoundRobin]) {
				d.setAddrs(b)
				mustUpdate(t, l)
				d.setAddrs(a, b)
				mustUpdate(t, l)
			},
			want: map[string]int{b: 40},
			wantEvents: []string{"enabled " + a + " healthy=true enabled=false",
				"removed " + a + " healthy=true enabled=false", "added " + a + " healthy=true enabled=false"},
		},
		{
			name: "drain ended",
			change: func(l *LoadBalancer[*RoundRobin]) error {
				return errors.Join(l.SetDrained(a, true), l.SetDrained(a, false))
			},
			want: map[string]int{a: 20, b: 20},
			wantEvents: []string{"enabled " + a + " healthy=true enabled=false",
				"enabled " + a + " healthy=true enabled=true"},
		},
		{
			name: "set before the address is discovered",
			change: func(l *LoadBalancer[*RoundRobin]) error {
				return errors.Join(l.SetWeight(c, 2), l.SetDrained(b, true))
			},
			rediscover: func(t *testing.T, d *fakeDiscovery, l *LoadBalancer[*RoundRobin]) {
				d.setAddrs(a, b, c)
				mustUpdate(t, l)
			},
			want: map[string]int{a: 40 / 3, c: 40 - 40/3},
			wantEvents: []string{"enabled " + b + " healthy=true enabled=false",
				"added " + c + " healthy=true enabled=true"},
		},
		{
			name: "cleared",
			change: func(l *LoadBalancer[*RoundRobin]) error {
				return errors.Join(l.SetDrained(a, true), l.ClearOverride(a))
			},
			want:       map[string]int{a: 20, b: 20},
			wantEvents: []string{"enabled " + a + " healthy=true enabled=false", "enabled " + a + " healthy=true enabled=true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDiscovery(a, b)
			rec := &recorder{}
			l, err := New(&RoundRobin{}, Options{Discovery: d, Observers: []Observer{rec}})
			if err != nil {
				t.Fatal(err)
			}
			mustUpdate(t, l)
			rec.take()
			if err := tt.change(l); err != nil {
				t.Fatal(err)
			}
			if tt.rediscover != nil {
				tt.rediscover(t, d, l)
			}
			expectEvents(t, rec.take(), tt.wantEvents)
			got := shares(l, 40)
			// Round robin is exact over whole periods; allow one off for
			// the uneven three-way case.
			for addr, n := range tt.want {
				if d := got[addr] - n; d < -1 || d > 1 {
					t.Fatalf("selections %v, want about %v", got, tt.want)
				}
			}
			for addr := range got {
				if _, ok := tt.want[addr]; !ok {
					t.Fatalf("selections %v reached %s, want only %v", got, addr, tt.want)
				}
			}
		})
	}
}

func TestOverrideStatusAndErrors(t *testing.T) {
	const a, b = "192.0.2.1:80", "192.0.2.2:80"
	l, err := New(&RoundRobin{}, Options{Discovery: newFakeDiscovery(a, b)})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, l)
	if err := l.SetWeight(a, 7); err != nil {
		t.Fatal(err)
	}
	if err := l.SetDrained(b, true); err != nil {
		t.Fatal(err)
	}
	st := l.Status()
	if st[0].Backend.Weight != 7 || st[0].Drained || !st[0].Enabled {
		t.Fatalf("status of %s: %+v, want weight 7, not drained", a, st[0])
	}
	if !st[1].Drained || st[1].Enabled {
		t.Fatalf("status of %s: %+v, want drained and not enabled", b, st[1])
	}
	want := map[string]Override{a: {Weight: 7}, b: {Drained: true}}
	if got := l.Overrides(); !maps.Equal(got, want) {
		t.Fatalf("Overrides() = %v, want %v", got, want)
	}

	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"weight too big", l.SetWeight(a, MaxWeight+1), ErrBadWeight},
		{"negative weight", l.SetWeight(a, -1), ErrBadWeight},
		{"bad address", l.SetWeight("nonsense", 2), ErrBadAddress},
		{"bad address drain", l.SetDrained("nonsense", true), ErrBadAddress},
		{"bad address seed", l.Seed("nonsense", true), ErrBadAddress},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if got := l.Overrides(); !maps.Equal(got, want) {
		t.Fatalf("a refused change altered the overrides: %v, want %v", got, want)
	}
}

// TestSeedSetsInitialHealth: a seeded backend starts with the seeded
// verdict, whatever Options.Initially says; its checks then decide with
// the usual thresholds; seeds the first Update does not use are dropped.
func TestSeedSetsInitialHealth(t *testing.T) {
	const a, b, c = "192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80"
	for _, initially := range []InitialHealth{InitiallyHealthy, InitiallyUnhealthy} {
		check := newFakeCheck()
		d := newFakeDiscovery(a, b)
		rec := &recorder{}
		l, err := New(listOrder{}, Options{Discovery: d, HealthCheck: check, Initially: initially,
			ConsecutiveSuccess: 2, ConsecutiveFailure: 2, Observers: []Observer{rec}})
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(l.Seed(a, false), l.Seed(b, true), l.Seed(c, false)); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, l)
		expectEvents(t, rec.take(), []string{"added " + a + " healthy=false enabled=true", "added " + b + " healthy=true enabled=true"})
		if got := selectAddr(l, 8); got != b {
			t.Fatalf("initially=%v: selected %q, want the backend seeded up, %s", initially, got, b)
		}
		// Two passing checks in a row bring a up (ConsecutiveSuccess 2).
		l.CheckHealth(context.Background())
		expectEvents(t, rec.take(), nil)
		l.CheckHealth(context.Background())
		expectEvents(t, rec.take(), []string{"health " + a + " healthy=true enabled=true"})

		// c's seed was not used by the first Update: c starts as Initially says.
		d.setAddrs(a, b, c)
		mustUpdate(t, l)
		expectEvents(t, rec.take(), []string{"added " + c + " healthy=" + map[bool]string{true: "true", false: "false"}[initially == InitiallyHealthy] + " enabled=true"})
	}
}

// TestSeedWithoutHealthCheckIsIgnored: without checks nothing could ever
// bring a backend seeded down back up.
func TestSeedWithoutHealthCheckIsIgnored(t *testing.T) {
	const a = "192.0.2.1:80"
	l, err := New(listOrder{}, Options{Discovery: newFakeDiscovery(a)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Seed(a, false); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, l)
	if got := selectAddr(l, 8); got != a {
		t.Fatalf("selected %q, want %s", got, a)
	}
}

package lb

import (
	"fmt"
	"slices"
	"testing"
)

// loadedBackends returns backends with states attached, the i-th carrying
// inflight[i] acquired requests.
func loadedBackends(weights []int, inflight []int) []Backend {
	bs := withStates(selTestBackends(weights...))
	for i, count := range inflight {
		for range count {
			bs[i].Acquire()
		}
	}
	return bs
}

// TestLeastLoadedPrefersLessLoaded checks cases where the winner is certain
// whatever the draw: with two backends both are always sampled, and with
// three at least one unloaded backend always is.
func TestLeastLoadedPrefersLessLoaded(t *testing.T) {
	cases := []struct {
		name     string
		weights  []int
		inflight []int
		winners  []int // the only backends allowed to win
	}{
		{"two, second idle", []int{1, 1}, []int{5, 0}, []int{1}},
		{"two, first idle", []int{1, 1}, []int{0, 1}, []int{0}},
		{"three, one busy", []int{1, 1, 1}, []int{9, 0, 0}, []int{1, 2}},
		{"weight lowers load", []int{4, 1}, []int{4, 2}, []int{0}},             // 4/4 < 2/1
		{"weight raises share", []int{1, 3}, []int{1, 2}, []int{1}},            // 2/3 < 1/1
		{"heavier still ahead", []int{MaxWeight, 1}, []int{9999, 1}, []int{0}}, // 9999/10000 < 1/1
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sel := buildSelector(t, LeastLoaded{}, loadedBackends(tc.weights, tc.inflight))
			for _, idx := range firstPicks(t, sel, 1000) {
				if !slices.Contains(tc.winners, idx) {
					t.Fatalf("picked backend %d (in flight %v, weights %v), want one of %v", idx, tc.inflight, tc.weights, tc.winners)
				}
			}
		})
	}
}

// TestLeastLoadedTieGoesToFirstSample checks that with equal loads the
// order of the draw decides, so both backends of a tied pair win.
func TestLeastLoadedTieGoesToFirstSample(t *testing.T) {
	sel := buildSelector(t, LeastLoaded{}, loadedBackends([]int{2, 2}, []int{3, 3}))
	won := make([]bool, 2)
	for _, idx := range firstPicks(t, sel, 1000) {
		won[idx] = true
	}
	if !won[0] || !won[1] {
		t.Fatalf("winners %v: a tie must go to whichever was drawn first", won)
	}
}

// TestLeastLoadedSpreadsEqualLoad checks that with equal (zero) loads the
// first sample always wins, so picks follow the weights.
func TestLeastLoadedSpreadsEqualLoad(t *testing.T) {
	for _, tc := range shareWeightSets {
		t.Run(tc.name, func(t *testing.T) {
			sel := buildSelector(t, LeastLoaded{}, withStates(selTestBackends(tc.weights...)))
			checkShares(t, firstPicks(t, sel, sharePicks), tc.weights)
		})
	}
}

// TestLeastLoadedBalancesAcquired keeps every picked request in flight.
// With two backends both are always compared, so the loads per unit of
// weight can never drift apart by more than one request on the lighter
// backend: |in0/w0 - in1/w1| ≤ 1/min(w).
func TestLeastLoadedBalancesAcquired(t *testing.T) {
	cases := [][]int{{1, 1}, {1, 3}, {7, 2}}
	for _, weights := range cases {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			bs := withStates(selTestBackends(weights...))
			sel := buildSelector(t, LeastLoaded{}, bs)
			w0, w1 := int64(weights[0]), int64(weights[1])
			for pick := range 3000 {
				idx, _, _ := sel.Next(sel.Start(nil))
				bs[idx].Acquire()
				gap := bs[0].InFlight()*w1 - bs[1].InFlight()*w0
				if gap < -max(w0, w1) || gap > max(w0, w1) {
					t.Fatalf("after %d picks: in flight %d and %d for weights %v", pick+1, bs[0].InFlight(), bs[1].InFlight(), weights)
				}
			}
		})
	}
}

// TestLeastLoadedFallbackOrder checks the candidates: the winner, the other
// sample, then the rest once each in list order after the winner.
func TestLeastLoadedFallbackOrder(t *testing.T) {
	t.Run("two", func(t *testing.T) {
		sel := buildSelector(t, LeastLoaded{}, loadedBackends([]int{1, 1}, []int{2, 0}))
		if walk := walkSelection(t, sel, 2); !slices.Equal(walk, []int{1, 0}) {
			t.Fatalf("walk %v, want [1 0]", walk)
		}
	})
	t.Run("five", func(t *testing.T) {
		const n = 5
		sel := buildSelector(t, LeastLoaded{}, withStates(selTestBackends(3, 1, 4, 1, 5)))
		for range 200 {
			walk := walkSelection(t, sel, n)
			if len(walk) != n {
				t.Fatalf("walk %v has %d candidates, want %d", walk, len(walk), n)
			}
			checkCoversAll(t, walk, n)
			var rest []int
			for i := 1; i < n; i++ {
				if idx := (walk[0] + i) % n; idx != walk[1] {
					rest = append(rest, idx)
				}
			}
			if !slices.Equal(walk[2:], rest) {
				t.Fatalf("walk %v: after the two samples want %v", walk, rest)
			}
		}
	})
}

func TestRemainingAfter(t *testing.T) {
	cases := []struct {
		pick, other, n int
		want           []int
	}{
		{1, 3, 5, []int{2, 4, 0}},
		{3, 1, 5, []int{4, 0, 2}},
		{4, 0, 5, []int{1, 2, 3}},
		{0, 4, 5, []int{1, 2, 3}},
		{0, 1, 3, []int{2}},
		{2, 0, 3, []int{1}},
		{0, 1, 2, nil},
	}
	for _, tc := range cases {
		var got []int
		for m := range tc.n - 2 {
			got = append(got, remainingAfter(tc.pick, tc.other, m, tc.n))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("remainingAfter(pick %d, other %d, n %d) = %v, want %v", tc.pick, tc.other, tc.n, got, tc.want)
		}
	}
}

// TestOwnerExcept checks the second sample's mapping exactly: over every
// point of the cut weight line, each backend but the skipped one owns as
// many points as its weight.
func TestOwnerExcept(t *testing.T) {
	weights := []int{3, 1, 4, 1, 5}
	bs := selTestBackends(weights...)
	sel := buildSelector(t, LeastLoaded{}, bs).(*leastLoadedSelector)
	total := 0
	for _, w := range weights {
		total += w
	}
	for skip, skipWeight := range weights {
		owned := make([]int, len(weights))
		for point := range total - skipWeight {
			owned[sel.ownerExcept(skip, uint64(point))]++
		}
		want := slices.Clone(weights)
		want[skip] = 0
		if !slices.Equal(owned, want) {
			t.Errorf("skipping %d: points owned %v, want %v", skip, owned, want)
		}
	}
}

// TestLeastLoadedConcurrent picks, acquires and releases from many
// goroutines at once; run it with -race. Every request is released, so the
// loads return to zero.
func TestLeastLoadedConcurrent(t *testing.T) {
	const goroutines, perGoroutine = 4, 5000
	weights := []int{1, 2, 3, 4}
	bs := withStates(selTestBackends(weights...))
	sel := buildSelector(t, LeastLoaded{}, bs)
	counts := concurrentFirstPicks(t, func() Selector { return sel }, len(weights), goroutines, perGoroutine, func(idx int) {
		bs[idx].Acquire()
		bs[idx].Release()
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	if total != goroutines*perGoroutine {
		t.Fatalf("counted %d picks, want %d", total, goroutines*perGoroutine)
	}
	for i := range bs {
		if got := bs[i].InFlight(); got != 0 {
			t.Errorf("backend %d: %d in flight after every release", i, got)
		}
	}
}

func BenchmarkLeastLoaded(b *testing.B) { benchmarkSelector(b, LeastLoaded{}) }

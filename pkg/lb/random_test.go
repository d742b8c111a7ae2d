package lb

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// This file also holds the helpers shared by the tests of the keyless
// selectors (RoundRobin, Random, LeastLoaded).

// shareTolerance is how far, as an absolute fraction of all picks, a
// backend's share of first picks may stray from its weight's share.
const shareTolerance = 0.01

// sharePicks is how many first picks a share test draws: with it the
// standard deviation of any random share is under 0.16%, so the tolerance
// sits more than six deviations away.
const sharePicks = 100_000

// selTestBackends returns one loopback backend per weight, in order.
func selTestBackends(weights ...int) []Backend {
	bs := make([]Backend, len(weights))
	for i, w := range weights {
		bs[i] = MustBackend(fmt.Sprintf("127.0.0.1:%d", 20000+i), w)
	}
	return bs
}

// withStates attaches a fresh healthy backendState to every backend, as
// the LoadBalancer does, so Acquire and InFlight work.
func withStates(bs []Backend) []Backend {
	for i := range bs {
		bs[i].state = newBackendState(true)
	}
	return bs
}

// mixedWeights returns n weights cycling through a Fibonacci run, so that
// they are mixed, coprime overall, and span two orders of magnitude.
func mixedWeights(n int) []int {
	fib := []int{1, 2, 3, 5, 8, 13, 21, 34, 55, 89}
	ws := make([]int, n)
	for i := range ws {
		ws[i] = fib[i%len(fib)]
	}
	return ws
}

// selWeightSet is a named list of backend weights.
type selWeightSet struct {
	name    string
	weights []int
}

// shareWeightSets are the weight sets whose shares the statistical tests
// check.
var shareWeightSets = []selWeightSet{
	{"equal 1,1,1", []int{1, 1, 1}},
	{"skewed 5,1,1", []int{5, 1, 1}},
	{"rising 1,2,3,4", []int{1, 2, 3, 4}},
	{"heavy 10000,1", []int{MaxWeight, 1}},
	{"100 mixed", mixedWeights(100)},
}

func buildSelector(t testing.TB, alg Algorithm, bs []Backend) Selector {
	t.Helper()
	sel, err := alg.Build(bs)
	if err != nil {
		t.Fatalf("Build(%d backends): %v", len(bs), err)
	}
	return sel
}

// walkSelection returns every candidate of one selection, failing t if the
// selector has not ended after limit candidates.
func walkSelection(t testing.TB, sel Selector, limit int) []int {
	t.Helper()
	var got []int
	c := sel.Start(nil)
	for range limit + 1 {
		idx, next, ok := sel.Next(c)
		if !ok {
			return got
		}
		got = append(got, idx)
		c = next
	}
	t.Fatalf("selection did not end within %d candidates: %v...", limit, got[:min(len(got), 20)])
	return nil
}

// firstPicks returns the first candidate of each of count selections.
func firstPicks(t testing.TB, sel Selector, count int) []int {
	t.Helper()
	picks := make([]int, count)
	for i := range picks {
		idx, _, ok := sel.Next(sel.Start(nil))
		if !ok {
			t.Fatalf("selection %d yielded nothing", i)
		}
		picks[i] = idx
	}
	return picks
}

// checkShares fails t when some backend's share of picks strays from its
// weight's share by more than shareTolerance.
func checkShares(t testing.TB, picks []int, weights []int) {
	t.Helper()
	counts := make([]int, len(weights))
	for _, idx := range picks {
		counts[idx]++
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	for i, w := range weights {
		want := float64(w) / float64(total)
		got := float64(counts[i]) / float64(len(picks))
		if diff := got - want; diff > shareTolerance || diff < -shareTolerance {
			t.Errorf("backend %d (weight %d): share %.4f, want %.4f ± %.2f", i, w, got, want, shareTolerance)
		}
	}
}

// checkCoversAll fails t unless walk holds every index below n and nothing
// else.
func checkCoversAll(t testing.TB, walk []int, n int) {
	t.Helper()
	seen := make([]bool, n)
	for _, idx := range walk {
		if idx < 0 || idx >= n {
			t.Fatalf("walk %v yields index %d out of [0, %d)", walk, idx, n)
		}
		seen[idx] = true
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("walk %v never yields backend %d", walk, i)
		}
	}
}

func TestRandomShares(t *testing.T) {
	for _, tc := range shareWeightSets {
		t.Run(tc.name, func(t *testing.T) {
			sel := buildSelector(t, Random{}, selTestBackends(tc.weights...))
			checkShares(t, firstPicks(t, sel, sharePicks), tc.weights)
		})
	}
}

// TestAliasTableExact checks that the table gives every index exactly its
// weight's probability: each of the n columns has height total, so index i
// must own weight(i)·n units over all columns.
func TestAliasTableExact(t *testing.T) {
	sets := append([]selWeightSet{
		{"single", []int{7}},
		{"one short among tall", []int{1, 9, 9, 9}},
		{"one tall among short", []int{9, 1, 1, 1}},
	}, shareWeightSets...)
	for _, tc := range sets {
		t.Run(tc.name, func(t *testing.T) {
			table := newAliasTable(selTestBackends(tc.weights...))
			n := uint64(len(tc.weights))
			owned := make([]uint64, n)
			for col := range table.keep {
				if table.keep[col] > table.total {
					t.Fatalf("column %d keeps %d, over its height %d", col, table.keep[col], table.total)
				}
				owned[col] += table.keep[col]
				owned[table.alias[col]] += table.total - table.keep[col]
			}
			for i, w := range tc.weights {
				if want := uint64(w) * n; owned[i] != want {
					t.Errorf("index %d (weight %d) owns %d units, want %d", i, w, owned[i], want)
				}
			}
		})
	}
}

func TestRandomFallbackOrder(t *testing.T) {
	weights := []int{3, 1, 4, 1, 5}
	sel := buildSelector(t, Random{}, selTestBackends(weights...))
	n := len(weights)
	for range 200 {
		walk := walkSelection(t, sel, n)
		if len(walk) != n {
			t.Fatalf("walk %v has %d candidates, want %d", walk, len(walk), n)
		}
		for step, idx := range walk {
			if want := (walk[0] + step) % n; idx != want {
				t.Fatalf("walk %v: candidate %d is %d, want %d (list order after the pick)", walk, step, idx, want)
			}
		}
	}
}

// keylessAlgorithms are the algorithms of this file set, each in every
// selector mode, for the tests that hold for all of them.
func keylessAlgorithms() []struct {
	name string
	alg  Algorithm
} {
	return []struct {
		name string
		alg  Algorithm
	}{
		{"RoundRobin table", &RoundRobin{}},
		{"RoundRobin live", &RoundRobin{tableLimit: 1}},
		{"Random", Random{}},
		{"LeastLoaded", LeastLoaded{}},
	}
}

func TestKeylessEmptyList(t *testing.T) {
	for _, tc := range keylessAlgorithms() {
		t.Run(tc.name, func(t *testing.T) {
			sel := buildSelector(t, tc.alg, nil)
			if _, _, ok := sel.Next(sel.Start([]byte("key"))); ok {
				t.Fatal("selector over no backends yielded a candidate")
			}
		})
	}
}

func TestKeylessSingleBackend(t *testing.T) {
	for _, tc := range keylessAlgorithms() {
		t.Run(tc.name, func(t *testing.T) {
			sel := buildSelector(t, tc.alg, withStates(selTestBackends(4)))
			for range 10 {
				if walk := walkSelection(t, sel, 1); len(walk) != 1 || walk[0] != 0 {
					t.Fatalf("walk over one backend = %v, want [0]", walk)
				}
			}
		})
	}
}

func TestKeylessRejectBadWeight(t *testing.T) {
	bad := []struct {
		name   string
		weight int
	}{
		{"zero", 0},
		{"negative", -3},
		{"over max", MaxWeight + 1},
	}
	for _, tc := range keylessAlgorithms() {
		for _, b := range bad {
			t.Run(tc.name+"/"+b.name, func(t *testing.T) {
				bs := selTestBackends(1, 1)
				bs[1].Weight = b.weight
				sel, err := tc.alg.Build(bs)
				if !errors.Is(err, ErrBadWeight) {
					t.Fatalf("Build with weight %d = %v, %v; want ErrBadWeight", b.weight, sel, err)
				}
			})
		}
	}
}

// TestKeylessFallbackEnds checks the Selector contract on every mode: each
// walk yields every backend at least once and then ends.
func TestKeylessFallbackEnds(t *testing.T) {
	for _, tc := range keylessAlgorithms() {
		for _, ws := range shareWeightSets {
			t.Run(tc.name+"/"+ws.name, func(t *testing.T) {
				sel := buildSelector(t, tc.alg, withStates(selTestBackends(ws.weights...)))
				// Round robin's documented bound: its shared draws, then a
				// walk of at most one period.
				limit := (liveDrawsPerBackend+1)*len(ws.weights) + 2*smoothPeriod(selTestBackends(ws.weights...))
				for range 50 {
					checkCoversAll(t, walkSelection(t, sel, limit), len(ws.weights))
				}
			})
		}
	}
}

// TestKeylessNoAllocs checks that a whole selection, first pick and full
// fallback, allocates nothing.
func TestKeylessNoAllocs(t *testing.T) {
	for _, tc := range keylessAlgorithms() {
		for _, n := range []int{3, 100} {
			t.Run(fmt.Sprintf("%s/%d backends", tc.name, n), func(t *testing.T) {
				sel := buildSelector(t, tc.alg, withStates(selTestBackends(mixedWeights(n)...)))
				allocs := testing.AllocsPerRun(200, func() {
					c := sel.Start(nil)
					for ok := true; ok; {
						_, c, ok = sel.Next(c)
					}
				})
				if allocs != 0 {
					t.Fatalf("a selection allocates %.1f times, want 0", allocs)
				}
			})
		}
	}
}

// TestRandomConcurrent picks from many goroutines at once; run it with
// -race. Every pick must land on a backend and be counted once.
func TestRandomConcurrent(t *testing.T) {
	const goroutines, perGoroutine = 4, 5000
	weights := []int{1, 2, 3, 4}
	sel := buildSelector(t, Random{}, selTestBackends(weights...))
	counts := concurrentFirstPicks(t, func() Selector { return sel }, len(weights), goroutines, perGoroutine, nil)
	total := 0
	for i, c := range counts {
		if c == 0 {
			t.Errorf("backend %d never picked", i)
		}
		total += c
	}
	if total != goroutines*perGoroutine {
		t.Fatalf("counted %d picks, want %d", total, goroutines*perGoroutine)
	}
}

// concurrentFirstPicks runs goroutines that each make perGoroutine first
// picks through the selector current returns at the time, calling onPick
// (when not nil) with each pick, and returns the number of picks per
// backend.
func concurrentFirstPicks(t *testing.T, current func() Selector, n, goroutines, perGoroutine int, onPick func(int)) []int {
	t.Helper()
	var wg sync.WaitGroup
	perG := make([][]int, goroutines)
	errs := make(chan error, goroutines)
	for g := range goroutines {
		perG[g] = make([]int, n)
		wg.Go(func() {
			for range perGoroutine {
				sel := current()
				idx, _, ok := sel.Next(sel.Start(nil))
				if !ok || idx < 0 || idx >= n {
					errs <- fmt.Errorf("pick = %d, %v", idx, ok)
					return
				}
				perG[g][idx]++
				if onPick != nil {
					onPick(idx)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	counts := make([]int, n)
	for _, c := range perG {
		for i := range c {
			counts[i] += c[i]
		}
	}
	return counts
}

func benchmarkSelector(b *testing.B, alg Algorithm) {
	for _, n := range []int{3, 100} {
		sel := buildSelector(b, alg, withStates(selTestBackends(mixedWeights(n)...)))
		b.Run(fmt.Sprintf("%d backends", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sel.Next(sel.Start(nil))
			}
		})
		b.Run(fmt.Sprintf("%d backends parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					sel.Next(sel.Start(nil))
				}
			})
		})
	}
}

func BenchmarkRandom(b *testing.B) { benchmarkSelector(b, Random{}) }

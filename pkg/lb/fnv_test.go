package lb

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// This file holds the contract tests every hashing algorithm (FNV, Ketama,
// Maglev) must pass, their shared helpers, and FNV's own tests.

// hashAlgorithms lists the hashing algorithms under the shared contract.
var hashAlgorithms = []struct {
	name string
	algo Algorithm
}{
	{"FNV", FNV{}},
	{"Ketama", Ketama{}},
	{"Maglev", Maglev{}},
}

// hashTestBackends returns loopback backends 127.0.0.1:10000+i with the
// given weights.
func hashTestBackends(t testing.TB, weights ...int) []Backend {
	t.Helper()
	backends := make([]Backend, len(weights))
	for i, w := range weights {
		b, err := NewBackend(fmt.Sprintf("127.0.0.1:%d", 10000+i), w)
		if err != nil {
			t.Fatalf("backend %d: %v", i, err)
		}
		backends[i] = b
	}
	return backends
}

// hashTestUniform returns n loopback backends of weight w.
func hashTestUniform(t testing.TB, n, w int) []Backend {
	t.Helper()
	weights := make([]int, n)
	for i := range weights {
		weights[i] = w
	}
	return hashTestBackends(t, weights...)
}

// hashTestKeys returns n random 16-byte keys, the same for the same seed.
func hashTestKeys(n int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	keys := make([][]byte, n)
	for i := range keys {
		k := make([]byte, 16)
		for j := range k {
			k[j] = byte(r.Uint32())
		}
		keys[i] = k
	}
	return keys
}

// hashTestBuild builds algo over backends or fails the test.
func hashTestBuild(t testing.TB, algo Algorithm, backends []Backend) Selector {
	t.Helper()
	s, err := algo.Build(backends)
	if err != nil {
		t.Fatalf("Build(%d backends): %v", len(backends), err)
	}
	return s
}

// hashTestFirst returns the first candidate for key, failing if there is
// none.
func hashTestFirst(t testing.TB, s Selector, key []byte) int {
	t.Helper()
	i, _, ok := s.Next(s.Start(key))
	if !ok {
		t.Fatalf("no candidate for key %q", key)
	}
	return i
}

// hashTestShares returns the fraction of keys whose first candidate is
// each backend.
func hashTestShares(t testing.TB, s Selector, keys [][]byte, n int) []float64 {
	t.Helper()
	counts := make([]int, n)
	for _, k := range keys {
		counts[hashTestFirst(t, s, k)]++
	}
	shares := make([]float64, n)
	for i, c := range counts {
		shares[i] = float64(c) / float64(len(keys))
	}
	return shares
}

// hashTestWeightShare returns backend i's share of the total weight.
func hashTestWeightShare(backends []Backend, i int) float64 {
	total := 0
	for _, b := range backends {
		total += b.Weight
	}
	return float64(backends[i].Weight) / float64(total)
}

// hashTestShareCases are the weight sets the share tests run over.
var hashTestShareCases = []struct {
	name    string
	weights []int
}{
	{"three equal", []int{1, 1, 1}},
	{"one to four", []int{1, 2, 3, 4}},
	{"one ten hundred", []int{1, 10, 100}},
	{"ten equal", []int{5, 5, 5, 5, 5, 5, 5, 5, 5, 5}},
	{"hundred mixed", func() []int {
		w := make([]int, 100)
		for i := range w {
			w[i] = 1 + i%5
		}
		return w
	}()},
}

func TestHashSelectorsSameKeySameBackend(t *testing.T) {
	keys := hashTestKeys(2000, 1)
	for _, a := range hashAlgorithms {
		for _, n := range []int{1, 3, 100} {
			t.Run(fmt.Sprintf("%s/%d", a.name, n), func(t *testing.T) {
				weights := make([]int, n)
				for i := range weights {
					weights[i] = 1 + i%3
				}
				backends := hashTestBackends(t, weights...)
				first := hashTestBuild(t, a.algo, backends)
				again := hashTestBuild(t, a.algo, slices.Clone(backends))
				for _, k := range keys {
					want := hashTestFirst(t, first, k)
					if got := hashTestFirst(t, first, k); got != want {
						t.Fatalf("key %x: backend %d then %d from the same selector", k, want, got)
					}
					if got := hashTestFirst(t, again, k); got != want {
						t.Fatalf("key %x: backend %d, but %d from a rebuild of the same list", k, want, got)
					}
				}
			})
		}
	}
}

// hashTestMaxSteps is the bound each algorithm documents for a selection.
func hashTestMaxSteps(algo Algorithm, backends []Backend) int {
	total := 0
	for _, b := range backends {
		total += b.Weight
	}
	n := len(backends)
	switch algo.(type) {
	case FNV:
		return total // at most one slot per unit of weight
	case Ketama:
		return total * ketamaPointsPerWeight
	case Maglev:
		return 1 + min(DefaultMaglevTableSize-1, 2*n) + n
	}
	panic(fmt.Sprintf("no documented bound for %T", algo))
}

func TestHashSelectorsFallbackCoversEveryBackend(t *testing.T) {
	cases := []struct {
		name    string
		weights []int
	}{
		{"one", []int{1}},
		{"three", []int{1, 1, 1}},
		{"weighted", []int{1, 3, 2, 1}},
		{"skewed", []int{1000, 1, 1}},
		{"hundred", func() []int {
			w := make([]int, 100)
			for i := range w {
				w[i] = 1 + i%4
			}
			return w
		}()},
	}
	keys := hashTestKeys(20, 2)
	for _, a := range hashAlgorithms {
		for _, tc := range cases {
			t.Run(a.name+"/"+tc.name, func(t *testing.T) {
				backends := hashTestBackends(t, tc.weights...)
				s := hashTestBuild(t, a.algo, backends)
				limit := hashTestMaxSteps(a.algo, backends)
				for _, k := range keys {
					seen := make([]bool, len(backends))
					steps := 0
					c := s.Start(k)
					for {
						i, next, ok := s.Next(c)
						if !ok {
							break
						}
						if i < 0 || i >= len(backends) {
							t.Fatalf("key %x: index %d out of range [0,%d)", k, i, len(backends))
						}
						seen[i] = true
						c = next
						if steps++; steps > limit {
							t.Fatalf("key %x: more than %d candidates", k, limit)
						}
					}
					if missing := slices.Index(seen, false); missing >= 0 {
						t.Fatalf("key %x: backend %d never yielded in %d steps", k, missing, steps)
					}
					if _, _, ok := s.Next(c); ok {
						t.Fatalf("key %x: Next yielded again after reporting the end", k)
					}
				}
			})
		}
	}
}

func TestHashSelectorsEmpty(t *testing.T) {
	for _, a := range hashAlgorithms {
		for _, backends := range [][]Backend{nil, {}} {
			t.Run(a.name, func(t *testing.T) {
				s := hashTestBuild(t, a.algo, backends)
				c := s.Start([]byte("key"))
				if i, _, ok := s.Next(c); ok {
					t.Fatalf("empty selector yielded %d", i)
				}
			})
		}
	}
}

func TestHashSelectorsRejectBadWeights(t *testing.T) {
	for _, a := range hashAlgorithms {
		for _, w := range []int{0, -1, MaxWeight + 1} {
			t.Run(fmt.Sprintf("%s/%d", a.name, w), func(t *testing.T) {
				backends := hashTestBackends(t, 1, 1)
				backends[1].Weight = w
				_, err := a.algo.Build(backends)
				if !errors.Is(err, ErrBadWeight) {
					t.Fatalf("Build with weight %d: got %v, want ErrBadWeight", w, err)
				}
			})
		}
	}
}

func TestHashSelectorsWeightEdges(t *testing.T) {
	cases := []struct {
		name    string
		weights []int
	}{
		{"single at weight 1", []int{1}},
		// Both bounds at once; larger rings cost Ketama seconds under -race.
		{"MaxWeight beside 1", []int{1, MaxWeight}},
	}
	keys := hashTestKeys(20000, 3)
	for _, a := range hashAlgorithms {
		for _, tc := range cases {
			t.Run(a.name+"/"+tc.name, func(t *testing.T) {
				backends := hashTestBackends(t, tc.weights...)
				s := hashTestBuild(t, a.algo, backends)
				shares := hashTestShares(t, s, keys, len(backends))
				for i, got := range shares {
					want := hashTestWeightShare(backends, i)
					if d := got - want; d > 0.05 || d < -0.05 {
						t.Errorf("backend %d (weight %d): share %.4f, want %.4f ± 0.05", i, backends[i].Weight, got, want)
					}
				}
			})
		}
	}
}

func TestHashSelectorsAllocateNothing(t *testing.T) {
	key := []byte("session-4242")
	for _, a := range hashAlgorithms {
		for _, n := range []int{3, 100} {
			t.Run(fmt.Sprintf("%s/%d", a.name, n), func(t *testing.T) {
				s := hashTestBuild(t, a.algo, hashTestUniform(t, n, 2))
				allocs := testing.AllocsPerRun(200, func() {
					c := s.Start(key)
					for range 8 {
						var ok bool
						if _, c, ok = s.Next(c); !ok {
							break
						}
					}
				})
				if allocs != 0 {
					t.Fatalf("Start and Next allocate %.1f times per selection, want 0", allocs)
				}
			})
		}
	}
}

func TestHashSelectorsConcurrentUse(t *testing.T) {
	keys := hashTestKeys(500, 4)
	for _, a := range hashAlgorithms {
		t.Run(a.name, func(t *testing.T) {
			s := hashTestBuild(t, a.algo, hashTestBackends(t, 1, 2, 3, 4))
			want := make([]int, len(keys))
			for i, k := range keys {
				want[i] = hashTestFirst(t, s, k)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Go(func() {
					for i, k := range keys {
						if got, _, _ := s.Next(s.Start(k)); got != want[i] {
							errs <- fmt.Errorf("key %x: backend %d, want %d", k, got, want[i])
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestFNV1a64MatchesStdlib(t *testing.T) {
	inputs := []string{"", "a", "foobar", "127.0.0.1:8080", "\x00\xff\x80 key with spaces"}
	for _, in := range inputs {
		h := fnv.New64a()
		h.Write([]byte(in))
		if got, want := fnv1a64([]byte(in)), h.Sum64(); got != want {
			t.Errorf("fnv1a64(%q) = %#x, want %#x", in, got, want)
		}
	}
}

func TestFNVRingInterleaves(t *testing.T) {
	cases := []struct {
		name    string
		weights []int
		want    []uint32
	}{
		{"equal", []int{1, 1, 1}, []uint32{0, 1, 2}},
		{"equal reduced by common divisor", []int{4, 4}, []uint32{0, 1}},
		{"two to one", []int{2, 1}, []uint32{0, 1, 0}},
		{"reduced two to one", []int{200, 100}, []uint32{0, 1, 0}},
		{"three two one", []int{3, 2, 1}, []uint32{0, 1, 0, 2, 1, 0}},
		{"one to three", []int{1, 3}, []uint32{1, 0, 1, 1}},
		{"two two one", []int{2, 2, 1}, []uint32{0, 1, 2, 0, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := hashTestBuild(t, FNV{}, hashTestBackends(t, tc.weights...)).(*fnvSelector)
			if !slices.Equal(s.slots, tc.want) {
				t.Fatalf("ring %v, want %v", s.slots, tc.want)
			}
		})
	}
}

func TestFNVShares(t *testing.T) {
	keys := hashTestKeys(100000, 5)
	for _, tc := range hashTestShareCases {
		t.Run(tc.name, func(t *testing.T) {
			backends := hashTestBackends(t, tc.weights...)
			shares := hashTestShares(t, hashTestBuild(t, FNV{}, backends), keys, len(backends))
			for i, got := range shares {
				want := hashTestWeightShare(backends, i)
				if d := got - want; d > 0.01 || d < -0.01 {
					t.Errorf("backend %d (weight %d): share %.4f, want %.4f ± 0.01", i, backends[i].Weight, got, want)
				}
			}
		})
	}
}

func TestFNVRingTooLarge(t *testing.T) {
	// 1,678 backends of MaxWeight plus one of weight 1 (no common divisor)
	// need 16,780,001 slots, just over the limit.
	weights := make([]int, 1679)
	for i := range weights {
		weights[i] = MaxWeight
	}
	weights[0] = 1
	_, err := FNV{}.Build(hashTestBackends(t, weights...))
	if !errors.Is(err, ErrRingTooLarge) {
		t.Fatalf("Build: got %v, want ErrRingTooLarge", err)
	}
	// The same weights without the odd one out reduce to one slot each.
	if _, err := (FNV{}).Build(hashTestUniform(t, 1679, MaxWeight)); err != nil {
		t.Fatalf("Build of equal weights: %v", err)
	}
}

// BenchmarkHashSelect measures a selection's first candidate.
func BenchmarkHashSelect(b *testing.B) {
	key := []byte("session-4242")
	for _, a := range hashAlgorithms {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/%d", a.name, n), func(b *testing.B) {
				s := hashTestBuild(b, a.algo, hashTestUniform(b, n, 1))
				b.ReportAllocs()
				for b.Loop() {
					s.Next(s.Start(key))
				}
			})
		}
	}
}

package lb

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
)

func TestMaglevTableSizeValidation(t *testing.T) {
	three := func(t *testing.T) []Backend { return hashTestUniform(t, 3, 1) }
	none := func(*testing.T) []Backend { return nil }
	cases := []struct {
		name     string
		size     uint32
		backends func(*testing.T) []Backend
		wantErr  error
	}{
		{"default prime", DefaultMaglevTableSize, three, nil},
		{"small prime", 7, three, nil},
		{"smallest prime above backends", 5, three, nil},
		{"prime equal to backends", 3, three, ErrBadTableSize},
		{"prime below backends", 2, three, ErrBadTableSize},
		{"composite", 65536, three, ErrBadTableSize},
		{"square of a prime", 49, three, ErrBadTableSize},
		{"zero", 0, three, ErrBadTableSize},
		{"one", 1, three, ErrBadTableSize},
		{"above the limit", 16777259, three, ErrBadTableSize}, // prime
		{"composite with no backends", 9, none, ErrBadTableSize},
		{"prime with no backends", 2, none, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			backends := tc.backends(t)
			table, err := MaglevTable(backends, tc.size)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("MaglevTable(%d backends, %d): error %v, want %v", len(backends), tc.size, err, tc.wantErr)
			}
			switch {
			case err != nil && table != nil:
				t.Fatalf("a table of %d entries beside error %v", len(table), err)
			case err == nil && len(backends) == 0 && table != nil:
				t.Fatalf("a table of %d entries for no backends", len(table))
			case err == nil && len(backends) > 0 && len(table) != int(tc.size):
				t.Fatalf("%d entries, want %d", len(table), tc.size)
			}
		})
	}
}

func TestMaglevLargestTableSizeIsAccepted(t *testing.T) {
	// Checked without building: filling 16 Mi entries takes seconds.
	const largestPrime = MaxMaglevTableSize - 3
	if err := checkMaglevTableSize(largestPrime, 1000); err != nil {
		t.Fatalf("size %d: %v", uint32(largestPrime), err)
	}
}

func TestMaglevBuildUsesTableSize(t *testing.T) {
	backends := hashTestUniform(t, 3, 1)
	cases := []struct {
		algo Maglev
		want int
	}{
		{Maglev{}, DefaultMaglevTableSize},
		{Maglev{TableSize: 101}, 101},
	}
	for _, tc := range cases {
		s := hashTestBuild(t, tc.algo, backends).(*maglevSelector)
		if len(s.table) != tc.want {
			t.Errorf("%+v: table of %d entries, want %d", tc.algo, len(s.table), tc.want)
		}
	}
	if _, err := (Maglev{TableSize: 100}).Build(backends); !errors.Is(err, ErrBadTableSize) {
		t.Errorf("TableSize 100: got %v, want ErrBadTableSize", err)
	}
}

// maglevTestCounts returns how many entries each backend owns.
func maglevTestCounts(t *testing.T, table []uint32, n int) []int {
	t.Helper()
	counts := make([]int, n)
	for i, e := range table {
		if int(e) >= n {
			t.Fatalf("entry %d is %d, not an index into %d backends", i, e, n)
		}
		counts[e]++
	}
	return counts
}

func TestMaglevTableShares(t *testing.T) {
	cases := append(hashTestShareCases, []struct {
		name    string
		weights []int
	}{
		{"MaxWeight beside 1", []int{MaxWeight, 1}},
		{"thousand equal", maglevTestThousand(1)},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			backends := hashTestBackends(t, tc.weights...)
			table, err := MaglevTable(backends, DefaultMaglevTableSize)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range maglevTestCounts(t, table, len(backends)) {
				want := hashTestWeightShare(backends, i)
				exact := want * DefaultMaglevTableSize
				// Largest remainder: within one entry of the exact share.
				if d := float64(c) - exact; d >= 1 || d <= -1 {
					t.Errorf("backend %d (weight %d): %d entries, want %.2f ± 1", i, backends[i].Weight, c, exact)
				}
				if d := float64(c)/DefaultMaglevTableSize - want; d > 0.01 || d < -0.01 {
					t.Errorf("backend %d: share %.4f, want %.4f ± 0.01", i, float64(c)/DefaultMaglevTableSize, want)
				}
			}
		})
	}
}

// maglevTestThousand returns 1000 weights of w.
func maglevTestThousand(w int) []int {
	weights := make([]int, 1000)
	for i := range weights {
		weights[i] = w
	}
	return weights
}

func TestMaglevKeyShares(t *testing.T) {
	keys := hashTestKeys(100000, 9)
	for _, tc := range hashTestShareCases {
		t.Run(tc.name, func(t *testing.T) {
			backends := hashTestBackends(t, tc.weights...)
			shares := hashTestShares(t, hashTestBuild(t, Maglev{}, backends), keys, len(backends))
			for i, got := range shares {
				want := hashTestWeightShare(backends, i)
				if d := got - want; d > 0.01 || d < -0.01 {
					t.Errorf("backend %d (weight %d): share %.4f, want %.4f ± 0.01", i, backends[i].Weight, got, want)
				}
			}
		})
	}
}

// maglevTestMoved returns the fraction of table entries whose backend
// address differs between the tables of two lists.
func maglevTestMoved(t *testing.T, from, to []Backend) float64 {
	t.Helper()
	a, err := MaglevTable(from, DefaultMaglevTableSize)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MaglevTable(to, DefaultMaglevTableSize)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for i := range a {
		if from[a[i]].Addr != to[b[i]].Addr {
			moved++
		}
	}
	return float64(moved) / float64(len(a))
}

func TestMaglevRemovalDisruption(t *testing.T) {
	for _, n := range []int{3, 10, 100} {
		all := hashTestUniform(t, n, 1)
		for _, gone := range []int{0, n / 2, n - 1} {
			t.Run(fmt.Sprintf("%d/remove %d", n, gone), func(t *testing.T) {
				rest := append(append([]Backend(nil), all[:gone]...), all[gone+1:]...)
				limit := 1/float64(n) + 0.01
				if got := maglevTestMoved(t, all, rest); got > limit {
					t.Errorf("removing 1 of %d moved %.4f of entries, want at most %.4f", n, got, limit)
				}
			})
		}
	}
}

func TestMaglevAdditionDisruption(t *testing.T) {
	for _, n := range []int{3, 10, 100} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			grown := hashTestUniform(t, n+1, 1)
			limit := 1/float64(n+1) + 0.01
			if got := maglevTestMoved(t, grown[:n], grown); got > limit {
				t.Errorf("adding 1 to %d moved %.4f of entries, want at most %.4f", n, got, limit)
			}
		})
	}
}

func TestMaglevFallbackReachesBackendsWithoutEntries(t *testing.T) {
	// 200 backends at MaxWeight leave a weight-1 backend a share of
	// 1/2,000,001: less than half an entry of 65,537, so it owns none and
	// only the sweep can offer it.
	weights := make([]int, 201)
	for i := range weights {
		weights[i] = MaxWeight
	}
	weights[200] = 1
	backends := hashTestBackends(t, weights...)
	s := hashTestBuild(t, Maglev{}, backends).(*maglevSelector)
	if c := maglevTestCounts(t, s.table, len(backends))[200]; c != 0 {
		t.Fatalf("the weight-1 backend owns %d entries, want 0", c)
	}
	for _, k := range hashTestKeys(50, 10) {
		found := false
		for c, ok := s.Start(k), true; ok; {
			var i int
			if i, c, ok = s.Next(c); ok && i == 200 {
				found = true
			}
		}
		if !found {
			t.Fatalf("key %x: the backend without entries is never offered", k)
		}
	}
}

func TestIsPrime(t *testing.T) {
	primes := map[uint32]bool{2: true, 3: true, 5: true, 7: true, 65537: true, 16777213: true, 4294967291: true}
	for n := range uint32(100) {
		want := primes[n] || n > 7 && n%2 != 0 && n%3 != 0 && n%5 != 0 && n%7 != 0
		if got := isPrimeUint32(n); got != want {
			t.Errorf("isPrimeUint32(%d) = %v, want %v", n, got, want)
		}
	}
	for _, n := range []uint32{65537, 16777213, 4294967291} {
		if !isPrimeUint32(n) {
			t.Errorf("isPrimeUint32(%d) = false, want true", n)
		}
	}
	for _, n := range []uint32{65536, 65539 * 3, 16777215, 4294967295, 65521 * 65519} {
		if isPrimeUint32(n) {
			t.Errorf("isPrimeUint32(%d) = true, want false", n)
		}
	}
}

// BenchmarkMaglevBuild measures building the default 65,537-entry table.
func BenchmarkMaglevBuild(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			weights := make([]int, n)
			for i := range weights {
				weights[i] = 1 + i%3
			}
			backends := hashTestBackends(b, weights...)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := (Maglev{}).Build(backends); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
